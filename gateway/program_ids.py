"""A program's id inside the mesh: its tenant's name, '/', and the id the client knows.

Program ids are the clients' to choose, so two tenants may pick the same one; and a tenant
must never learn that another's program exists (#19: another tenant's program is NOT_FOUND,
indistinguishable from a missing one). So the gateway names every program inside its
tenant on the way in and takes the tenant off on the way out: the planner, the workers,
Redis and the traces see the inner id, clients only their own. Neither part can hold the
separator (tenant names: cache/tenant_directory.py; program ids: gateway/calls.py), so
the inner id names one tenant's program.
"""

from __future__ import annotations

SEPARATOR = "/"


def inner_id(tenant: str, program_id: str) -> str:
    """The mesh's id for `tenant`'s program `program_id` (the client's id)."""
    return f"{tenant}{SEPARATOR}{program_id}"


def client_id(inner: str) -> str:
    """The id the client knows for the program the mesh calls `inner`."""
    return inner.partition(SEPARATOR)[2]


def client_text(tenant: str, text: str) -> str:
    """A message from inside the mesh (the planner's) as `tenant`'s client reads it: the
    programs it names ('acme/p1', quoted as Python's repr quotes) by the client's ids."""
    for quote in ("'", '"'):
        text = text.replace(f"{quote}{tenant}{SEPARATOR}", quote)
    return text
