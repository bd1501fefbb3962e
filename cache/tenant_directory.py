"""Tenancy data in Redis (keys in cache/keys.py): what operators write, what gateways read.

The gateway keeps the last snapshot it loaded: when Redis is unreachable, keys that worked
keep working and new ones wait for Redis to come back.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping

import redis.asyncio as aioredis
import structlog

from cache.keys import tenancy_keys, tenancy_shared, tenancy_tenants
from cache.tenancy import Tenancy, key_digest

log = structlog.get_logger(__name__)

_REDIS_TROUBLE = (aioredis.RedisError, OSError, TimeoutError)
_TENANT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


class InvalidTenancy(ValueError):
    pass


def check_tenant(tenant: str) -> str:
    if not tenant or len(tenant) > 64 or not set(tenant) <= _TENANT_CHARS:
        raise InvalidTenancy(f"tenant names are 1-64 characters of letters, digits, '-', '_' "
                             f"or '.', got {tenant!r}")
    return tenant


class TenantDirectory:
    def __init__(self, client: aioredis.Redis, timeout_s: float = 0.5) -> None:
        self._redis = client
        self._timeout_s = timeout_s

    async def add_tenant(self, tenant: str, weight: float = 1.0) -> None:
        check_tenant(tenant)
        if weight <= 0:
            raise InvalidTenancy("a tenant's weight must be positive")
        await self._redis.hset(tenancy_tenants(), tenant,
                               json.dumps({"weight": weight, "created": time.time()}))

    async def add_key(self, tenant: str, api_key: str) -> None:
        """Stores the key's SHA-256 digest only; creates the tenant if it is new."""
        check_tenant(tenant)
        if len(api_key) < 8:
            raise InvalidTenancy("API keys must be at least 8 characters")
        digest = key_digest(api_key)
        owner = await self._redis.hget(tenancy_keys(), digest)
        if owner is not None and owner.decode() != tenant:
            raise InvalidTenancy("this API key already belongs to another tenant")
        if not await self._redis.hexists(tenancy_tenants(), tenant):
            await self.add_tenant(tenant)
        await self._redis.hset(tenancy_keys(), digest, tenant)

    async def revoke_key(self, api_key: str) -> bool:
        return bool(await self._redis.hdel(tenancy_keys(), key_digest(api_key)))

    async def declare_shared(self, name: str, prefix: str) -> None:
        """An operator-declared shared prompt prefix: its KV blocks are indexed under one salt
        for every tenant (e.g. a public system prompt). Never a client's choice."""
        if not name or not prefix:
            raise InvalidTenancy("a shared prefix needs a name and a non-empty text")
        await self._redis.hset(tenancy_shared(), name, prefix)

    async def remove_shared(self, name: str) -> bool:
        return bool(await self._redis.hdel(tenancy_shared(), name))

    async def seed(self, api_keys: Mapping[str, str]) -> None:
        """Writes configured keys (ostinato config's gateway.api_keys) into the directory."""
        for api_key, tenant in api_keys.items():
            await self.add_key(tenant, api_key)

    async def load(self) -> Tenancy:
        pipe = self._redis.pipeline(transaction=False)
        pipe.hkeys(tenancy_tenants())
        pipe.hgetall(tenancy_keys())
        pipe.hgetall(tenancy_shared())
        tenants, keys, shared = await asyncio.wait_for(pipe.execute(), self._timeout_s * 4)
        return Tenancy(
            tenants=frozenset(t.decode() for t in tenants),
            keys={d.decode(): t.decode() for d, t in keys.items()},
            shared_prefixes={n.decode(): p.decode() for n, p in shared.items()},
        )


class TenancyView:
    """The gateway's current snapshot, reloaded every `every_s` while Redis answers."""

    def __init__(self, directory: TenantDirectory | None, initial: Tenancy) -> None:
        self._directory = directory
        self.current = initial
        self.stale = False

    async def reload(self) -> bool:
        if self._directory is None:
            return False
        try:
            self.current = await self._directory.load()
        except _REDIS_TROUBLE as exc:
            if not self.stale:
                log.warning("tenancy: redis unreachable, serving the last snapshot",
                            error=str(exc) or type(exc).__name__)
            self.stale = True
            return False
        self.stale = False
        return True

    async def run(self, every_s: float = 2.0) -> None:
        while True:
            await asyncio.sleep(every_s)
            await self.reload()
