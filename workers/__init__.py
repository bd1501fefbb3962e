"""Workers: one per engine; they stream tokens from SGLang (or the sim engine)
over its native HTTP API."""
