"""Tenancy data in Redis (keys in cache/keys.py): what operators write, what gateways read.

Every change bumps a version counter, which gateways poll (every 0.1 s): a key created or
revoked works, or stops working, at every gateway within about that, not at its next full
reload (every 2 s). The gateway keeps the last snapshot it loaded (cache/tenancy_view.py):
when Redis is unreachable, keys that worked keep working and new ones wait for Redis to come
back.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import secrets
import time
from collections.abc import Mapping

import structlog

from cache.keys import (
    open_programs,
    program_calls,
    program_meta,
    tenancy_keys,
    tenancy_revoked,
    tenancy_shared,
    tenancy_tenants,
    tenancy_version,
    tenant_data_pattern,
    tenant_programs,
)
from cache.redis_client import AsyncClient, text
from cache.tenancy import ANONYMOUS_TENANT, Tenancy, TenantLimits, key_digest

log = structlog.get_logger(__name__)
_GENERATION = re.compile(r"[0-9a-f]{1,32}")
_TENANT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


class InvalidTenancy(ValueError):
    pass


def new_generation() -> str:
    return secrets.token_hex(8)


def check_tenant(tenant: str) -> str:
    if not tenant or len(tenant) > 64 or not set(tenant) <= _TENANT_CHARS:
        raise InvalidTenancy(f"tenant names are 1-64 characters of letters, digits, '-', '_' "
                             f"or '.', got {tenant!r}")
    return tenant


def check_keyed_tenant(tenant: str) -> str:
    """A tenant that holds keys: never the one of callers without a key in open mode, which
    every such caller shares (its programs, stored responses, conversations and caches)."""
    check_tenant(tenant)
    if tenant == ANONYMOUS_TENANT:
        raise InvalidTenancy(f"{tenant!r} is the tenant of callers without a key in open "
                             "mode (--no-auth): choose another name")
    return tenant


def _record(raw: bytes | str) -> dict[str, float | int]:
    """A stored tenant record's limit fields (records written before limits: weight only)."""
    data = json.loads(raw)
    names = {f.name for f in dataclasses.fields(TenantLimits)}
    return {k: v for k, v in data.items() if k in names} if isinstance(data, dict) else {}


def record_generation(raw: bytes | str | None) -> str:
    """A stored tenant record's generation ("" for none: written before they were, or a
    record that is not JSON)."""
    try:
        data = json.loads(raw) if raw is not None else None
    except ValueError:  # (JSONDecodeError, UnicodeDecodeError)
        return ""
    found = data.get("generation") if isinstance(data, dict) else None
    return found if isinstance(found, str) and _GENERATION.fullmatch(found) else ""


def _limits(**fields: float | int) -> TenantLimits:
    try:
        return TenantLimits(**fields)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise InvalidTenancy(str(exc)) from None


class TenantDirectory:
    def __init__(self, client: AsyncClient, timeout_s: float = 0.5) -> None:
        self._redis = client
        self._timeout_s = timeout_s

    async def add_tenant(self, tenant: str, weight: float | None = None) -> None:
        raw = await self._redis.hget(tenancy_tenants(), check_keyed_tenant(tenant))
        await self._write(tenant, _limits(**({} if weight is None else {"weight": weight})),
                          record_generation(raw) or new_generation())

    async def _write(self, tenant: str, limits: TenantLimits, generation: str) -> None:
        """The record: its limits, and its `generation`, the random id of this incarnation
        of the tenant (security review 2026-12-05 F3): its programs' ids and its KV-cache
        namespace carry it (ostinato/program_ids.py), so a tenant revoked and created again
        under the same name reaches none of the old one's programs or cached prefixes."""
        await self._redis.hset(tenancy_tenants(), tenant,
                               json.dumps({**{k: v for k, v in dataclasses.asdict(limits).items()
                                              if v is not None},  # (a weight not named)
                                           "created": time.time(), "generation": generation}))
        await self._changed()

    async def _changed(self) -> None:
        await self._redis.incr(tenancy_version())

    async def version(self) -> int:
        """The tenancy data's version: it changes with every write."""
        raw = await asyncio.wait_for(self._redis.get(tenancy_version()), self._timeout_s * 4)
        return int(raw or 0)

    async def create_tenant(self, tenant: str, limits: TenantLimits) -> str:
        """A new tenant and a key generated for it, returned once: only its SHA-256 is kept."""
        check_keyed_tenant(tenant)
        if await self._redis.hexists(tenancy_tenants(), tenant):
            raise InvalidTenancy(f"tenant {tenant!r} exists (update it, or give it a key)")
        await self._write(tenant, limits, new_generation())
        api_key = "ost-" + secrets.token_urlsafe(32)
        await self._redis.hset(tenancy_keys(), key_digest(api_key), tenant)
        await self._changed()
        return api_key

    async def update_tenant(self, tenant: str, **changes: float | int | None) -> TenantLimits:
        """Changes some of a tenant's limits; returns the new record. `weight=None` takes
        the record's weight out (the tenant then has `planner.tenant_weights`', else 1: how a
        record written before records could name none is set free of its weight 1)."""
        raw = await self._redis.hget(tenancy_tenants(), check_tenant(tenant))
        if raw is None:
            raise InvalidTenancy(f"no tenant {tenant!r}")
        fields = {k: v for k, v in {**_record(raw), **changes}.items() if v is not None}
        limits = _limits(**fields)
        await self._write(tenant, limits, record_generation(raw) or new_generation())
        return limits

    async def revoke_tenant(self, tenant: str) -> int:
        """Removes the tenant, every API key of it and its data (cached answers, saved
        conversations, quota buckets, its programs' records in Redis: a tenant created later
        under the same name starts with none of it, and, with a generation of its own, reaches
        none of the programs the planner still holds in memory for the old one, nor its
        KV-cache prefixes); returns how many API keys went."""
        keys = await self._redis.hgetall(tenancy_keys())
        digests = [d for d, t in keys.items() if text(t) == tenant]
        # Two steps, not one transaction: the hashes live in different Redis Cluster slots.
        # The keys go first, so a failure in between never leaves a key of a gone tenant.
        if digests:
            await self._redis.hset(tenancy_revoked(), mapping=dict.fromkeys(digests, tenant))
            await self._redis.hdel(tenancy_keys(), *digests)
        removed = await self._redis.hdel(tenancy_tenants(), check_tenant(tenant))
        await self._changed()
        if not removed:
            raise InvalidTenancy(f"no tenant {tenant!r}")
        batch: list[bytes] = []
        async for key in self._redis.scan_iter(match=tenant_data_pattern(tenant), count=1000):
            batch.append(key)
            if len(batch) >= 500:
                await self._redis.unlink(*batch)  # (a cluster client splits it by slot)
                batch = []
        if batch:
            await self._redis.unlink(*batch)
        await self._forget_programs(tenant)
        return len(digests)

    async def _forget_programs(self, tenant: str) -> None:
        """The tenant's program index (ost:programs:TENANT) and the records of the programs
        it names (each in a slot of its own: one key at a time)."""
        index = tenant_programs(tenant)
        for program_id in await self._redis.zrange(index, 0, -1):
            pid = text(program_id)
            await self._redis.unlink(program_meta(pid), program_calls(pid))
            await self._redis.zrem(open_programs(), pid)
        await self._redis.unlink(index)

    async def add_key(self, tenant: str, api_key: str, *, create: bool = False,
                      configured: bool = False) -> bool:
        """Stores the key's SHA-256 digest only. A tenant with no record is refused, or
        created (with default limits) when `create` (configured keys). A key revoked before
        is an operator's to add again: this takes it off the revoked list, but for a
        `configured` key (a gateway's seed), which a revoke made meanwhile takes back out.
        Returns whether the key is new: False when it already was the tenant's (nothing
        written: a Redis that refuses writes, full under noeviction, still takes a
        gateway's seed of keys it has)."""
        check_keyed_tenant(tenant)
        if len(api_key) < 8:
            raise InvalidTenancy("API keys must be at least 8 characters")
        digest = key_digest(api_key)
        owner = await self._redis.hget(tenancy_keys(), digest)
        if owner is not None and text(owner) != tenant:
            raise InvalidTenancy("this API key already belongs to another tenant")
        if not await self._redis.hexists(tenancy_tenants(), tenant):
            if not create:
                raise InvalidTenancy(f"no tenant {tenant!r} (make it with `ostinato tenants create "
                                     f"{tenant}`, which also gives it a key)")
            await self.add_tenant(tenant)
        if owner is not None:  # already the tenant's: nothing to write
            if not configured:  # (an operator's add-key ends a revoke left half done)
                await self._redis.hdel(tenancy_revoked(), digest)
            return False
        added = bool(await self._redis.hset(tenancy_keys(), digest, tenant))
        if not configured:
            await self._redis.hdel(tenancy_revoked(), digest)
        elif await self._redis.hexists(tenancy_revoked(), digest):
            # revoked since the seed read the list (revoke_key writes the list first): the
            # revoke wins
            await self._redis.hdel(tenancy_keys(), digest)
            added = False
        if added:
            await self._changed()
        return added

    async def revoke_key(self, api_key: str) -> bool:
        digest = key_digest(api_key)
        owner = await self._redis.hget(tenancy_keys(), digest)
        if owner is not None:  # kept revoked: a gateway's configured keys never bring it back
            await self._redis.hset(tenancy_revoked(), digest, owner)
        removed = bool(await self._redis.hdel(tenancy_keys(), digest))
        await self._changed()
        return removed

    async def declare_shared(self, name: str, prefix: str, replace: bool = False) -> bool:
        """An operator-declared shared prompt prefix: its KV blocks are indexed under one salt
        for every tenant (e.g. a public system prompt). Never a client's choice. A name
        already declared is changed only with `replace` (a typo must not silently take
        another prefix's place); returns whether one was replaced."""
        if not name or not prefix:
            raise InvalidTenancy("a shared prefix needs a name and a non-empty text")
        if replace:
            replaced = not await self._redis.hset(tenancy_shared(), name, prefix)
        elif not await self._redis.hsetnx(tenancy_shared(), name, prefix):
            raise InvalidTenancy(f"shared prefix {name!r} is already declared (replace it: "
                                 "--replace; withdraw it: unshare)")
        else:
            replaced = False
        await self._changed()
        return replaced

    async def remove_shared(self, name: str) -> bool:
        removed = bool(await self._redis.hdel(tenancy_shared(), name))
        await self._changed()
        return removed

    async def seed(self, api_keys: Mapping[str, str]) -> None:
        """Writes configured keys (ostinato config's gateway.api_keys) into the directory,
        but for those revoked with `ostinato tenants` (revoke-key, or revoke of their
        tenant): every gateway seeds at its start, and a replica started later (a scale-up,
        a rollout) must not bring back a key, or a tenant, revoked meanwhile (replicas
        review 2026-12-05 F1). `ostinato tenants add-key` adds one again. A key that another
        tenant holds is not written; the others are, then InvalidTenancy names it."""
        revoked = {text(d) for d in await self._redis.hkeys(tenancy_revoked())}
        refused = []
        for api_key, tenant in api_keys.items():
            if key_digest(api_key) in revoked:
                log.info("tenancy: a configured key was revoked in redis: not restored",
                         tenant=tenant)
                continue
            try:
                await self.add_key(tenant, api_key, create=True, configured=True)
            except InvalidTenancy as exc:
                refused.append(f"the key configured for tenant {tenant!r}: {exc}")
        if refused:
            raise InvalidTenancy("; ".join(refused))

    async def load(self) -> Tenancy:
        pipe = self._redis.pipeline(transaction=False)
        pipe.hgetall(tenancy_tenants())
        pipe.hgetall(tenancy_keys())
        pipe.hgetall(tenancy_shared())
        pipe.hkeys(tenancy_revoked())
        records, keys, shared, revoked = await asyncio.wait_for(pipe.execute(),
                                                                 self._timeout_s * 4)
        limits = {}
        for tenant, raw in records.items():
            try:
                limits[tenant.decode()] = _limits(**_record(raw))
            except (InvalidTenancy, ValueError) as exc:  # one bad record never locks everyone out
                log.warning("tenancy: bad tenant record ignored", tenant=tenant.decode(), error=str(exc))
        return Tenancy(
            limits=limits,
            generations={t.decode(): g for t, raw in records.items() if (g := record_generation(raw))},
            tenants=frozenset(t.decode() for t in records),
            keys={d.decode(): t.decode() for d, t in keys.items()},
            shared_prefixes={n.decode(): p.decode() for n, p in shared.items()},
            # (digests are hex: an entry written by hand that is not UTF-8 matches none)
            revoked=frozenset(d.decode(errors="replace") for d in revoked),
        )
