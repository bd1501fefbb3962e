"""The one Redis key layout of Ostinato.

Every key starts with "ost:". Keys that must live together (a program and its calls)
share a Redis Cluster hash tag in braces, so multi-key operations work on a cluster.
Tenant-scoped keys carry the tenant inside the hash tag.

    ost:{prog:<program_id>}:meta      hash   program record (tenant, class, deadline, state, ...)
    ost:{prog:<program_id>}:calls     hash   call_id -> JSON call record
    ost:programs:<tenant>             zset   program ids of a tenant, scored by creation time
    ost:recovery:open                 zset   programs not yet ended (planner recovery)

Caches (cache/exact.py, cache/semantic.py). The tenant is inside the hash tag: a tenant's
entries live in one slot, and no key of one tenant can be built from another's request.

    ost:{t:<tenant>}:exact:<sha256>   string JSON answer, fixed TTL
    ost:{t:<tenant>}:sem:<entry_id>   hash   vec (float32 bytes), context, text, answer; fixed TTL
    ost:{t:<tenant>}:sem:index        zset   entry ids by insertion time (size bound, eviction)
    ost:sem:tenants                   set    tenants with semantic entries (index rebuild)
    ost:sem:stream                    stream add/del of semantic entries (replica index sync)
"""

from __future__ import annotations

PREFIX = "ost"


def program_meta(program_id: str) -> str:
    return f"{PREFIX}:{{prog:{program_id}}}:meta"


def program_calls(program_id: str) -> str:
    return f"{PREFIX}:{{prog:{program_id}}}:calls"


def tenant_programs(tenant: str) -> str:
    return f"{PREFIX}:programs:{tenant}"


def open_programs() -> str:
    return f"{PREFIX}:recovery:open"


def exact_entry(tenant: str, digest: str) -> str:
    return f"{PREFIX}:{{t:{tenant}}}:exact:{digest}"


def semantic_entry(tenant: str, entry_id: str) -> str:
    return f"{PREFIX}:{{t:{tenant}}}:sem:{entry_id}"


def semantic_index(tenant: str) -> str:
    return f"{PREFIX}:{{t:{tenant}}}:sem:index"


def semantic_tenants() -> str:
    return f"{PREFIX}:sem:tenants"


def semantic_stream() -> str:
    return f"{PREFIX}:sem:stream"
