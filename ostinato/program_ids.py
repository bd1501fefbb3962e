"""A program's id inside the mesh: its tenant's name, '/', and the id the client knows.

Program ids are the clients' to choose, so two tenants may pick the same one; and a tenant
must never learn that another's program exists (#19: another tenant's program is NOT_FOUND,
indistinguishable from a missing one). So the gateway names every program inside its
tenant on the way in and takes the tenant off on the way out: the planner, the workers,
Redis and the traces see the inner id, clients only their own. Neither part can hold the
separator (tenant names: cache/tenant_directory.py; program ids: gateway/calls.py), so
the inner id names one tenant's program.

The tenant part carries the tenant's generation (cache/tenant_directory.py), 'acme#5f..',
when its record has one: a tenant revoked and created again under the same name is another
namespace, and reaches none of the old one's programs (security review 2026-12-05 F3). The
same part names the tenant's KV-cache namespace (gateway/mesh_run.py cache_salt). '#' is in
no tenant name.
"""

from __future__ import annotations

import re

SEPARATOR = "/"
GENERATION = "#"

MAX_ID = 128  # characters in a program, call or thread id (kept with every call record)
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def id_problem(value: str, name: str, *, slash: bool = True) -> str | None:
    """What is wrong with a client's id or label (`name` says which), or None: at most
    MAX_ID characters, no '/' (`slash`: the separator above, in ids), no control
    characters (logs, traces and `ostinato trace` print them: a terminal escape in one
    reached an operator's terminal, tracing review 2026-12-05 F9). The gateway refuses
    such an id (INVALID_ARGUMENT), the SDK before sending it (ValueError)."""
    if len(value) > MAX_ID or (slash and SEPARATOR in value):
        return f"{name} must be at most {MAX_ID} characters" + (
            " and contain no '/'" if slash else "")
    if _CONTROL.search(value):
        return f"{name} must not contain control characters"
    return None


def namespace(tenant: str, generation: str = "") -> str:
    """The tenant part of its programs' ids (and of its KV-cache salt)."""
    return f"{tenant}{GENERATION}{generation}" if generation else tenant


def inner_id(tenant: str, program_id: str, generation: str = "") -> str:
    """The mesh's id for `tenant`'s program `program_id` (the client's id)."""
    return f"{namespace(tenant, generation)}{SEPARATOR}{program_id}"


def namespace_of(inner: str, tenant: str) -> str:
    """The tenant part of `tenant`'s inner id `inner` (`tenant` for an id not of its form)."""
    head, sep, _ = inner.partition(SEPARATOR)
    return head if sep and (head == tenant or head.startswith(tenant + GENERATION)) else tenant


def client_id(inner: str) -> str:
    """The id the client knows for the program the mesh calls `inner`."""
    return inner.partition(SEPARATOR)[2]


def client_text(tenant: str, text: str) -> str:
    """A message from inside the mesh (the planner's) as `tenant`'s client reads it: the
    programs it names ('acme/p1', quoted as Python's repr quotes) by the client's ids."""
    return re.sub(rf"""(['"]){re.escape(tenant)}(?:{GENERATION}[0-9a-f]+)?{SEPARATOR}""",
                  r"\1", text)
