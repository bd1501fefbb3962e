"""The one Redis key layout of Ostinato.

Every key starts with "ost:". Keys that must live together (a program and its calls)
share a Redis Cluster hash tag in braces, so multi-key operations work on a cluster.
Tenant-scoped keys carry the tenant inside the hash tag.

    ost:{prog:<program_id>}:meta      hash   program record (tenant, class, deadline, state, ...)
    ost:{prog:<program_id>}:calls     hash   call_id -> JSON call record
    ost:programs:<tenant>             zset   program ids of a tenant, scored by creation time
    ost:recovery:open                 zset   programs not yet ended (planner recovery)
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
