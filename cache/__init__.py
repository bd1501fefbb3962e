"""Everything Ostinato keeps in Redis: key layout, the embedded server, and (later) caches."""
