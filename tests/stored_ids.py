"""The id the mesh stores a tenant's program under (ostinato/program_ids.py inner_id), read
from the tenant's record in Redis: it carries the tenant's generation
(cache/tenant_directory.py), which only Redis knows."""

from __future__ import annotations

import redis

from cache import keys
from cache.tenant_directory import record_generation
from ostinato.program_ids import inner_id, namespace


def tenant_namespace(store: redis.Redis, tenant: str) -> str:
    """`tenant`'s part of its programs' ids and of its KV-cache salt, and what its stored
    responses and conversations are keyed by."""
    return namespace(tenant, record_generation(store.hget(keys.tenancy_tenants(), tenant)))  # type: ignore[arg-type]


def stored_program_id(store: redis.Redis, tenant: str, program_id: str) -> str:
    """The mesh's id for `tenant`'s program that its client knows as `program_id`."""
    return inner_id(tenant, program_id,
                    record_generation(store.hget(keys.tenancy_tenants(), tenant)))  # type: ignore[arg-type]
