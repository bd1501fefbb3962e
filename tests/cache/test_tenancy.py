"""Tenancy data in a real Redis and a Redis Cluster: tenants, API-key digests (never keys),
shared prefixes."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis

from cache import keys
from cache.tenancy import Tenancy, TenantLimits, chatml_system_prefix, key_digest
from cache.tenancy_view import TenancyView
from cache.tenant_directory import InvalidTenancy, TenantDirectory
from ostinato.program_ids import namespace
from tests.cache.conftest import tenant_name
from tests.conftest import OwnRedis
from tests.ports import closed_port
from tests.redis_cluster import RedisTarget


async def test_keys_map_to_tenants_and_only_digests_are_stored(directory: TenantDirectory,
                                                               redis_target: RedisTarget) -> None:
    tenant, key = tenant_name(), "sk-" + uuid.uuid4().hex
    await directory.add_key(tenant, key, create=True)
    snap = await directory.load()
    assert tenant in snap.tenants and snap.tenant_for(key) == tenant
    assert snap.tenant_for(key + "x") is None
    client = redis_target.client()
    try:
        stored = await client.hgetall(keys.tenancy_keys())
    finally:
        await client.aclose()
    assert key.encode() not in stored and key_digest(key).encode() in stored
    assert await directory.revoke_key(key)
    assert (await directory.load()).tenant_for(key) is None


async def test_a_key_cannot_move_to_another_tenant(directory: TenantDirectory) -> None:
    key = "sk-" + uuid.uuid4().hex
    await directory.add_key(tenant_name(), key, create=True)
    with pytest.raises(InvalidTenancy, match="another tenant"):
        await directory.add_key(tenant_name(), key, create=True)


async def test_a_key_for_a_tenant_with_no_record_is_refused_unless_asked_to_create(
        directory: TenantDirectory) -> None:
    tenant, key = tenant_name(), "sk-" + uuid.uuid4().hex
    with pytest.raises(InvalidTenancy, match=f"no tenant '{tenant}'"):
        await directory.add_key(tenant, key)
    snap = await directory.load()
    assert tenant not in snap.tenants and snap.tenant_for(key) is None  # nothing written
    await directory.add_key(tenant, key, create=True)
    assert (await directory.load()).tenant_for(key) == tenant


@pytest.mark.parametrize(("tenant", "key"), [
    ("", "long-enough-key"), ("has space", "long-enough-key"), ("x" * 65, "long-enough-key"),
    ("ok", "short"),
])
async def test_bad_tenancy_input_is_refused(directory: TenantDirectory, tenant: str,
                                            key: str) -> None:
    with pytest.raises(InvalidTenancy):
        await directory.add_key(tenant, key, create=True)


async def test_the_anonymous_tenants_name_cannot_be_created(directory: TenantDirectory) -> None:
    """Open mode's callers without a key are tenant `default`: a tenant of that name would
    share their programs, responses and caches."""
    with pytest.raises(InvalidTenancy, match="without a key in open mode"):
        await directory.create_tenant("default", TenantLimits())
    # nor made by a key given to it (a gateway's seed of configured keys: security review
    # 2026-12-07 found `gateway.api_keys: {KEY: default}` made it)
    with pytest.raises(InvalidTenancy, match="without a key in open mode"):
        await directory.add_key("default", "sk-owner-of-default-0123", create=True)
    with pytest.raises(InvalidTenancy, match="without a key in open mode"):
        await directory.add_tenant("default")
    assert "default" not in (await directory.load()).tenants


async def test_shared_prefixes(directory: TenantDirectory) -> None:
    label = tenant_name()
    prefix = chatml_system_prefix("You are a public help desk.")
    await directory.declare_shared(label, prefix)
    snap = await directory.load()
    prompt = prefix + "<|im_start|>user\nhello<|im_end|>\n"
    assert snap.shared_bytes(prompt) == len(prefix.encode())
    assert snap.shared_bytes("<|im_start|>system\nsomething else") == 0
    other = chatml_system_prefix("You are a private desk.")
    with pytest.raises(InvalidTenancy, match="already declared"):  # not replaced silently
        await directory.declare_shared(label, other)
    assert (await directory.load()).shared_prefixes[label] == prefix
    assert await directory.declare_shared(label, other, replace=True)
    assert (await directory.load()).shared_prefixes[label] == other
    fresh = tenant_name()
    assert not await directory.declare_shared(fresh, other, replace=True)  # a new one
    assert await directory.remove_shared(fresh)
    assert await directory.remove_shared(label)
    assert (await directory.load()).shared_bytes(prompt) == 0
    with pytest.raises(InvalidTenancy):
        await directory.declare_shared(label, "")


def test_longest_declared_prefix_wins() -> None:
    snap = Tenancy(shared_prefixes={"short": "abc", "long": "abcdef"})
    assert snap.shared_bytes("abcdefg") == 6
    assert snap.shared_bytes("abcx") == 3
    assert snap.shared_bytes("xabc") == 0


async def test_view_keeps_the_last_snapshot_when_redis_is_down() -> None:
    client = aioredis.from_url(f"redis://127.0.0.1:{closed_port()}", socket_connect_timeout=0.1)
    try:
        initial = Tenancy(keys={key_digest("configured-key"): "acme"})
        view = TenancyView(TenantDirectory(client, timeout_s=0.1), initial)
        assert await view.reload() is False
        assert view.stale and view.current.tenant_for("configured-key") == "acme"
    finally:
        await client.aclose()


async def test_configured_keys_a_stalled_redis_did_not_take_are_written_at_a_later_reload(
        own_redis: OwnRedis) -> None:
    """CI (test-engine): a gateway started while Redis was slow to answer could not write its
    configured keys; its first snapshot had them, and its first reload with Redis back
    replaced it with Redis's, which had not: every call with a configured key was refused
    for good. The view serves them meanwhile and writes them at its next full reload."""
    client, configured = own_redis.client, {"sk-configured-key": "acme"}
    view = TenancyView(TenantDirectory(client, timeout_s=0.5),
                       Tenancy(keys={key_digest(k): t for k, t in configured.items()}),
                       seed=configured)
    with own_redis.server.paused():
        with pytest.raises((aioredis.RedisError, TimeoutError)):
            await view.seed()
        assert await view.reload() is False and await view.refresh() is False
        assert view.stale and view.current.tenant_for("sk-configured-key") == "acme"
    async with asyncio.timeout(30.0):  # Redis back: read, the key served on top (retried:
        while not await view.refresh():  # the resumed server first runs what queued, 0.5 s
            await asyncio.sleep(0.05)  # a read on a busy machine)
    assert not view.stale and view.current.tenant_for("sk-configured-key") == "acme"
    assert await view.reload() is True  # a full reload: written, then read
    assert (await TenantDirectory(client).load()).tenant_for("sk-configured-key") == "acme"
    assert view.current.tenant_for("sk-configured-key") == "acme"


async def test_a_redis_that_refuses_writes_leaves_the_snapshot_current(own_redis: OwnRedis) -> None:
    """A helper's review: Redis full (maxmemory, noeviction) refuses every write; a gateway
    whose configured keys could not be written still reads what Redis holds (keys made or
    revoked by operators), with its configured keys on top, but none revoked there; and one
    whose configured keys Redis already has writes nothing to seed them."""
    client = own_redis.client
    directory = TenantDirectory(client, timeout_s=0.5)
    made = await directory.create_tenant("made", TenantLimits())
    await directory.add_key("gone", "sk-revoked-configured", create=True)
    await directory.revoke_key("sk-revoked-configured")
    await directory.add_key("kept", "sk-kept-configured", create=True)
    await client.config_set("maxmemory", 1)  # every write refused
    with pytest.raises(aioredis.ResponseError, match="maxmemory"):
        await client.set("probe", "x")
    configured = {"sk-new-configured": "fresh", "sk-revoked-configured": "gone"}
    view = TenancyView(directory, Tenancy(), seed=configured)
    assert await view.reload() is True and not view.stale
    assert view.current.tenant_for(made) == "made"
    assert view.current.tenant_for("sk-new-configured") == "fresh"
    assert view.current.tenant_for("sk-revoked-configured") is None
    already = TenancyView(directory, Tenancy(), seed={"sk-kept-configured": "kept"})
    await already.seed()  # nothing to write: no refusal
    assert await already.reload() and already.current.tenant_for("sk-kept-configured") == "kept"


async def test_a_configured_key_revoked_while_it_is_seeded_stays_revoked(
        directory: TenantDirectory, redis_target: RedisTarget) -> None:
    """A helper's review: a revoke that lands between a seed's read of the revoked list and
    its write of the key must win (the seed wrote the key back and took it off the list)."""
    tenant, key = tenant_name(), "sk-" + uuid.uuid4().hex
    await directory.add_key(tenant, key, create=True)
    client = redis_target.client()
    try:  # the revoke's first write (the list), as if the seed came between it and the next
        await client.hset(keys.tenancy_revoked(), key_digest(key), tenant)
        await client.hdel(keys.tenancy_keys(), key_digest(key))
        assert await directory.add_key(tenant, key, configured=True) is False
        assert await client.hexists(keys.tenancy_revoked(), key_digest(key))
    finally:
        await client.aclose()
    assert (await directory.load()).tenant_for(key) is None


async def test_a_configured_key_of_another_tenant_does_not_stop_the_others(
        directory: TenantDirectory) -> None:
    """A helper's review: the seed stopped at the first key another tenant held; the
    configured keys after it were never written."""
    taken, other = "sk-" + uuid.uuid4().hex, "sk-" + uuid.uuid4().hex
    await directory.add_key(tenant_name(), taken, create=True)
    mine = tenant_name()
    with pytest.raises(InvalidTenancy, match="another tenant"):
        await directory.seed({taken: mine, other: mine})
    assert (await directory.load()).tenant_for(other) == mine


async def test_created_tenants_get_a_generated_key_and_their_limits(
        directory: TenantDirectory) -> None:
    tenant = tenant_name()
    key = await directory.create_tenant(tenant, TenantLimits(weight=2.0, rpm=60, max_programs=5))
    other = await directory.create_tenant(tenant_name(), TenantLimits())
    assert key.startswith("ost-") and len(key) > 40 and key != other
    snap = await directory.load()
    assert snap.tenant_for(key) == tenant
    assert snap.limits_of(tenant) == TenantLimits(weight=2.0, rpm=60, max_programs=5)
    assert snap.limits_of("nobody") == TenantLimits()
    with pytest.raises(InvalidTenancy, match="exists"):
        await directory.create_tenant(tenant, TenantLimits())
    assert await directory.update_tenant(tenant, tpm=1000) == TenantLimits(
        weight=2.0, rpm=60, tpm=1000, max_programs=5)
    for weight in (0, float("nan"), float("inf")):  # nan > 0 is False: caught as well
        with pytest.raises(InvalidTenancy, match="weight"):
            await directory.update_tenant(tenant, weight=weight)
    assert await directory.revoke_tenant(tenant) == 1
    snap = await directory.load()
    assert tenant not in snap.tenants and snap.tenant_for(key) is None
    with pytest.raises(InvalidTenancy, match="no tenant"):
        await directory.revoke_tenant(tenant)


async def test_a_revoked_tenants_data_goes_with_it(directory: TenantDirectory,
                                                   redis_target: RedisTarget) -> None:
    # a tenant created later under the same name must not read the old one's cached answers
    tenant, other = tenant_name(), tenant_name()
    await directory.create_tenant(tenant, TenantLimits())
    await directory.create_tenant(other, TenantLimits())
    client = redis_target.client()
    try:
        # the answer caches are keyed by the namespace (name and generation; two
        # generations: one of them written late, by a call of an earlier incarnation), the
        # rest by the name
        mine = [keys.exact_entry(namespace(tenant, "5f1e"), "d1"),
                keys.semantic_index(namespace(tenant, "77ab")), keys.quota_calls(tenant)]
        theirs = [keys.exact_entry(other, "d1"), keys.exact_entry(tenant + "x", "d1"),
                  keys.exact_entry(namespace(tenant + "x", "5f1e"), "d1")]
        for key in [*mine, *theirs]:
            await client.set(key, "answer")
        await directory.revoke_tenant(tenant)
        assert [await client.exists(k) for k in mine] == [0, 0, 0]
        assert [await client.exists(k) for k in theirs] == [1, 1, 1]  # others' data stays
    finally:
        await client.aclose()


async def test_a_tenant_created_again_is_a_new_generation_without_the_old_programs(
        directory: TenantDirectory, redis_target: RedisTarget) -> None:
    """Security review 2026-12-05 F3: the record's generation (the namespace of the tenant's
    programs and KV cache) stays through updates and is new after revoke and create; revoke
    removes the tenant's program index and the records it names."""
    tenant = tenant_name()
    await directory.create_tenant(tenant, TenantLimits())
    first = (await directory.load()).generation_of(tenant)
    await directory.update_tenant(tenant, rpm=5)
    await directory.add_tenant(tenant, weight=2.0)
    assert first and (await directory.load()).generation_of(tenant) == first
    client = redis_target.client()
    pid = f"{tenant}#{first}/p1"
    try:
        await client.zadd(keys.tenant_programs(tenant), {pid: 1.0})
        await client.hset(keys.program_meta(pid), "tenant", tenant)
        await client.hset(keys.program_calls(pid), "c1", "{}")
        await directory.revoke_tenant(tenant)
        assert [await client.exists(k) for k in (keys.tenant_programs(tenant),
                                                  keys.program_meta(pid),
                                                  keys.program_calls(pid))] == [0, 0, 0]
    finally:
        await client.aclose()
    await directory.create_tenant(tenant, TenantLimits())
    second = (await directory.load()).generation_of(tenant)
    assert second and second != first


@pytest.mark.parametrize("record", ['{"weight": -1}', "not json", "[1, 2]", '{"generation": 5}',
                                    b"\xff\xfe"])
async def test_a_bad_tenant_record_is_ignored_not_fatal(directory: TenantDirectory,
                                                       redis_target: RedisTarget,
                                                       record: str | bytes) -> None:
    """A record written by hand wrong: the tenant gets the default limits (a record that was
    not JSON made every load raise: no gateway could start or reload its tenancy)."""
    tenant = tenant_name()
    await directory.add_tenant(tenant)
    client = redis_target.client()
    try:
        await client.hset(keys.tenancy_tenants(), tenant, record)
        snap = await directory.load()
    finally:
        await client.hdel(keys.tenancy_tenants(), tenant)
        await client.aclose()
    assert tenant in snap.tenants and snap.limits_of(tenant) == TenantLimits()


async def test_a_view_reloads_as_soon_as_the_tenancy_changes(directory: TenantDirectory) -> None:
    """Every write bumps the tenancy's version; a gateway's view polls it (TenancyView.run,
    every 0.1 s) and reloads on a change only: a new key works, and a revoked one stops,
    without waiting for the full reload."""
    view = TenancyView(directory, Tenancy())
    assert await view.reload()
    assert await view.refresh() is False  # nothing changed: nothing read but the version
    tenant = tenant_name()
    key = await directory.create_tenant(tenant, TenantLimits())
    assert await view.refresh() is True and view.current.tenant_for(key) == tenant
    assert await view.refresh() is False
    assert await directory.revoke_key(key)
    assert await view.refresh() is True and view.current.tenant_for(key) is None
    await directory.update_tenant(tenant, rpm=7)
    assert await view.refresh() is True and view.current.limits_of(tenant).rpm == 7


async def test_a_revoked_configured_key_stays_revoked_when_a_gateway_seeds_again(
        directory: TenantDirectory) -> None:
    """Replicas review 2026-12-05 F1: every gateway writes its configured keys at start, so
    one started after a revoke (a scale-up, a rollout) brought the key, and its tenant with
    default limits, back on every replica."""
    kept, revoked, gone = tenant_name(), tenant_name(), tenant_name()
    keys = {f"sk-kept-{kept}": kept, f"sk-revoked-{revoked}": revoked, f"sk-gone-{gone}": gone}
    await directory.seed(keys)
    await directory.update_tenant(gone, rpm=5)
    assert await directory.revoke_key(f"sk-revoked-{revoked}")
    assert await directory.revoke_tenant(gone) == 1
    await directory.seed(keys)  # another replica starts
    snap = await directory.load()
    assert snap.tenant_for(f"sk-kept-{kept}") == kept  # positive control
    assert snap.tenant_for(f"sk-revoked-{revoked}") is None
    assert snap.tenant_for(f"sk-gone-{gone}") is None and gone not in snap.tenants
    # an operator adds it again: then it is seeded like any other
    assert await directory.add_key(revoked, f"sk-revoked-{revoked}")
    assert await directory.revoke_key(f"sk-kept-{kept}")
    assert await directory.add_key(kept, f"sk-kept-{kept}")
    await directory.seed(keys)
    snap = await directory.load()
    assert snap.tenant_for(f"sk-revoked-{revoked}") == revoked
    assert snap.tenant_for(f"sk-kept-{kept}") == kept


async def test_tenancy_data_that_is_not_utf8_leaves_the_last_snapshot_stale(
        own_redis: OwnRedis) -> None:
    """A tenant name written by hand, not UTF-8: the view keeps its last snapshot and says it
    is stale (a helper's review: the reload loop failed, was started again, failed, while
    the stale gauge said the snapshot was current)."""
    directory = TenantDirectory(own_redis.client, timeout_s=0.5)
    key = await directory.create_tenant("acme", TenantLimits())
    view = TenancyView(directory, Tenancy())
    assert await view.reload() and view.current.tenant_for(key) == "acme"
    await own_redis.client.hset(keys.tenancy_tenants(), b"\xff\xfe", "{}")
    assert await view.reload() is False
    assert view.stale and view.current.tenant_for(key) == "acme"


async def test_an_operators_add_key_ends_a_revoke_left_half_done(
        directory: TenantDirectory, redis_target: RedisTarget) -> None:
    """The key still in the directory but marked revoked (a revoke cut between its two
    writes): an operator's add-key takes the mark off; a gateway's seed does not."""
    tenant, key = tenant_name(), "sk-" + uuid.uuid4().hex
    await directory.add_key(tenant, key, create=True)
    client = redis_target.client()
    try:
        await client.hset(keys.tenancy_revoked(), key_digest(key), tenant)
        assert await directory.add_key(tenant, key, configured=True) is False
        assert await client.hexists(keys.tenancy_revoked(), key_digest(key))
        assert await directory.add_key(tenant, key) is False  # nothing new, the mark gone
        assert not await client.hexists(keys.tenancy_revoked(), key_digest(key))
    finally:
        await client.aclose()


async def test_a_revoked_entry_that_is_not_utf8_does_not_stop_a_load(own_redis: OwnRedis) -> None:
    directory = TenantDirectory(own_redis.client, timeout_s=0.5)
    key = await directory.create_tenant("acme", TenantLimits())
    await own_redis.client.hset(keys.tenancy_revoked(), b"\xff\xfe", "acme")
    assert (await directory.load()).tenant_for(key) == "acme"

