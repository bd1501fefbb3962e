"""`ostinato planner`: wires the planner core, its Redis store and the gRPC service."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable

import structlog

from cache.kv_mirror import KvMirror
from cache.redis_client import FAILURES, SLOW, AsyncClient, from_config
from cache.tenant_directory import TenantDirectory
from ostinato.clock import SystemClock
from ostinato.collector import freeze_after_start
from ostinato.config import PlannerConfig, RedisConfig
from ostinato.serving import GrpcService
from ostinato.supervised import supervised
from ostinato.v1 import planner_pb2, planner_pb2_grpc
from planner.core.planner import PlannerCore
from planner.core.selection import parse_policy
from planner.fencing import FencedOut
from planner.ha import ActiveOnly, LeaseKeeper, RedisLease
from planner.learned_store import LearnedStore
from planner.lease import LEASE_LOST_EXIT, Lease, LeaseTiming
from planner.metrics import PlannerMetrics
from planner.service import PlannerService
from planner.spans import ADMIT, describers
from planner.store import ProgramStore
from tracing.metrics_http import serve_metrics

log = structlog.get_logger(__name__)

# How long a lone planner tries to read the open programs left in Redis before it starts
# without them (about the gateway's own wait for a planner, ostinato/retry.py PLANNER_WAIT_S)
RESTORE_WAIT_S = 30.0


async def _follow_tenant_weights(core: PlannerCore, directory: TenantDirectory,
                                 configured: dict[str, float], every_s: float = 2.0) -> None:
    """Fair-share weights (`reload_tenant_weights`), reloaded every `every_s`."""
    while True:
        await reload_tenant_weights(core, directory, configured)
        await asyncio.sleep(every_s)


async def reload_tenant_weights(core: PlannerCore, directory: TenantDirectory,
                                configured: dict[str, float]) -> None:
    """The configured weights, overridden by the weights the tenants' records in Redis
    name (`ostinato tenants create/update --weight`; `Tenancy.weights`); while Redis is out
    of reach the last weights stay."""
    try:
        tenancy = await directory.load()
    except (*FAILURES, ValueError):  # (data in Redis not UTF-8: the gateways say it, stale)
        return
    core.set_tenant_weights(tenancy.weights(configured))


async def serve(config: PlannerConfig, redis_cfg: RedisConfig, port_file: str | None = None) -> None:
    if not redis_cfg.url:
        raise ValueError("the planner needs --redis-url (ostinato up starts an embedded Redis)")
    clock = SystemClock()
    priority, routing = parse_policy(config.policy)  # a live one: PlannerConfig refuses the others
    weights = config.weights()
    core = PlannerCore(clock, priority, routing, worker_ttl_s=config.worker_ttl_s,
                       program_idle_ttl_s=config.program_idle_ttl_s,
                       declared_idle_ttl_s=config.declared_idle_ttl_s, tenant_weights=weights,
                       starvation_ratio=config.starvation_ratio,
                       starvation_min_s=config.starvation_min_s,
                       starvation_max_s=config.starvation_max_s,
                       tenant_shares=config.tenant_shares,
                       max_home_wait_s=config.max_home_wait_s,
                       max_queued=config.max_queued_calls,
                       max_queued_per_tenant=config.max_queued_per_tenant,
                       kv_tokens_per_worker=config.kv_tokens_per_worker,
                       program_kv_fraction=config.program_kv_fraction,
                       program_admission=config.program_admission,
                       program_kv_idle_s=config.program_kv_idle_s,
                       conversation_kv_idle_s=config.conversation_kv_idle_s,
                       unstarted_grant_s=config.unstarted_grant_s,
                       isolation_fraction=config.isolation_fraction,
                       isolation_budget=config.isolation_budget)
    client = from_config(redis_cfg)
    # HA: nothing is acknowledged before it is in Redis, as long as the lease lasts (a
    # successor reads only what is there); alone, a planner serves on through an outage
    store = ProgramStore(client, clock, timeout_s=redis_cfg.timeout_s,
                         ended_ttl_s=config.ended_program_ttl_s, hold_in_outage=config.ha,
                         linger_s=config.store_linger_s)
    kv_index = KvMirror(client, timeout_s=redis_cfg.timeout_s) if config.kv_index else None
    learned = LearnedStore(client, redis_cfg.timeout_s)
    metrics = PlannerMetrics(core, clock=clock)
    service = PlannerService(core, store, clock, kv_index, metrics)
    if config.ha:  # within a TTL of the write the lease is lost (the call cut) or it landed
        service.persist_timeout_s = max(service.persist_timeout_s, config.lease_ttl_s)
    name = planner_pb2.DESCRIPTOR.services_by_name["Planner"].full_name
    keeper = _lease_keeper(config, client, redis_cfg, clock) if config.ha else None
    grpc_service = GrpcService([name], config.host, config.port, interceptors=[
        ActiveOnly(name, keeper.holds)] if keeper is not None else [])
    planner_pb2_grpc.add_PlannerServicer_to_server(service, grpc_service.server)
    grpc_service.tracing.describe(describers(config.policy))
    service.admit_span = describers(config.policy)[ADMIT]  # AdmitStream's admissions
    if keeper is not None:
        service.active = keeper.holds
    tasks: list[asyncio.Task[None]] = []

    async def take_over() -> None:
        """Loads what the planner before left in Redis, then plans."""
        if keeper is not None:
            store.fencing.token = keeper.lease.token
            store.on_fenced = keeper.depose
        await _restore(core, store, strict=keeper is not None)
        classes = await learned.load(core)
        if classes:
            log.info("learned estimates restored", classes=classes)
        freeze_after_start()
        directory = TenantDirectory(client, redis_cfg.timeout_s)
        tasks.extend([
            # (a fenced-out write deposes the planner: planner/ha.py ends its term)
            supervised(store.run, "program store writes", (FencedOut,)),
            supervised(service.housekeeping, "housekeeping"),
            supervised(lambda: learned.run(core, config.learned_save_s), "learned estimates"),
            supervised(lambda: _follow_tenant_weights(core, directory, weights),
                       "tenant weights")])

    async def on_stopping() -> None:
        if keeper is not None and not keeper.holds():
            await keeper.release()  # a standby, or deposed: nothing of ours to save
            return
        store.stop_lingering()  # what the calls still answered write goes at once
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(store.flush(), 2.0)
        await learned.save(core)
        if keeper is not None:
            await keeper.release()  # the standby takes over now, not a TTL later

    async def stand_by() -> None:  # once the server runs, as a standby
        assert keeper is not None
        tasks.append(asyncio.create_task(keeper.run()))
        tasks.append(asyncio.create_task(_term(keeper, grpc_service, take_over)))

    if keeper is None:
        await take_over()
    else:
        grpc_service.standby = True

    log.info("planner policy", policy=config.policy, ha=config.ha)
    metrics_server = await serve_metrics(metrics.registry, config.host, config.metrics_port)
    info = {"metrics_address": metrics_server.address} if metrics_server is not None else {}
    try:
        await grpc_service.run(port_file=port_file, on_stopping=on_stopping, info=info,
                               on_started=stand_by if keeper is not None else None)
    finally:
        if keeper is None or keeper.holds():  # what the grace period's answers wrote
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(store.flush(), 2.0)
        for task in tasks:
            task.cancel()
        if metrics_server is not None:
            await metrics_server.close()
        if kv_index is not None:
            await kv_index.close()
        await client.aclose()
    if keeper is not None and keeper.ended.is_set() and keeper.lease.reason != "stopping":
        # a deposed planner's memory is stale: its supervisor starts it again, as a standby
        log.error("planner exiting: its lease was lost", reason=keeper.lease.reason)
        raise SystemExit(LEASE_LOST_EXIT)


async def _restore(core: PlannerCore, store: ProgramStore, *, strict: bool,
                   wait_s: float = RESTORE_WAIT_S) -> None:
    """Takes back the open programs in Redis. Redis out of reach: a replica taking over
    (`strict`) must not start without them, and raises; a lone planner tries again for
    `wait_s` while Redis is slow to answer (for a moment at its start, on a busy machine:
    one failed read lost every open program for good, found by a helper's review), then
    starts without them, as it does at once when Redis refuses connections (not there)."""
    began, backoff = time.monotonic(), 0.1
    while True:
        try:
            restored = await asyncio.wait_for(
                store.load_open(), max(0.1, min(10.0, began + wait_s - time.monotonic())))
            break
        except FAILURES as exc:
            if strict:
                raise
            if not isinstance(exc, SLOW) or time.monotonic() + backoff - began >= wait_s:
                log.warning("redis unreachable at start: no programs recovered",
                            error=str(exc) or type(exc).__name__, waited_s=round(wait_s, 1))
                restored = []
                break
            log.info("redis unreachable at start: reading the open programs again",
                     error=str(exc) or type(exc).__name__)
        await asyncio.sleep(backoff)
        backoff = min(2.0, backoff * 2)
    for program in restored:
        core.restore(program)
    if restored:
        log.info("programs recovered", programs=len(restored),
                 calls=sum(len(p.calls) for p in restored))


def _lease_keeper(config: PlannerConfig, client: AsyncClient, redis_cfg: RedisConfig,
                  clock: SystemClock) -> LeaseKeeper:
    timing = LeaseTiming.of(config.lease_ttl_s, config.lease_renew_s)
    holder = f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"
    return LeaseKeeper(Lease(timing, clock.now()), RedisLease(client, holder), clock,
                       timeout_s=min(redis_cfg.timeout_s, timing.renew_s))


async def _term(keeper: LeaseKeeper, grpc_service: GrpcService,
                take_over: Callable[[], Awaitable[None]]) -> None:
    """A standby until the lease is ours; then loads the state in Redis and serves; once the
    term is over, stops serving at once (in-flight calls cut, not drained)."""
    waits = [asyncio.ensure_future(e.wait()) for e in (keeper.active, keeper.ended)]
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for w in waits:
        w.cancel()
    if not keeper.active.is_set():
        grpc_service.request_stop()  # the keeper failed before this planner ever served
        return
    try:
        await take_over()
    except FencedOut as exc:  # a newer planner already: ours is over before it began
        keeper.depose(str(exc))
    except FAILURES as exc:
        keeper.depose(f"the state in redis could not be loaded: {exc!r}")
    if keeper.holds():
        await grpc_service.set_serving(True)
        log.info("planner active: serving", token=keeper.lease.token)
    await keeper.ended.wait()
    await grpc_service.set_serving(False)
    grpc_service.grace_s = 0.0
    grpc_service.request_stop()
