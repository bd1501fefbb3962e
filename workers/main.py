"""`ostinato worker`: a Worker service in front of one SGLang (or sim) engine."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import replace

import grpc
import structlog

from cache.block_hash import DEFAULT_BLOCK_SIZE
from cache.kv_index import KvIndex
from cache.redis_client import SLOW, from_config
from ostinato.config import RedisConfig, TelemetryConfig, WorkerConfig
from ostinato.serving import GrpcService
from ostinato.supervised import supervised
from ostinato.tokenizers import load_tokenizer
from ostinato.v1 import planner_pb2, planner_pb2_grpc, worker_pb2, worker_pb2_grpc
from planner.ha_channel import planner_channel
from tracing.grpc_interceptors import client_interceptors
from tracing.metrics_http import serve_metrics
from workers.engine_process import (
    EngineLaunch,
    EngineProcess,
    EngineStartError,
    default_launch,
    free_port,
    kv_event_endpoints,
)
from workers.kv_event_listener import KvEventListener
from workers.kv_event_translator import KvEventTranslator
from workers.metrics import WorkerMetrics
from workers.service import WorkerService
from workers.sglang_client import EngineUnavailable, SGLangClient
from workers.spans import GENERATE, TracedSGLangClient, describers

log = structlog.get_logger(__name__)

FIRST_REGISTER_S = 10.0  # a worker whose planner takes no registration this long exits 1


async def _wait_for_engine(engine: SGLangClient, timeout_s: float,
                           warn_every_s: float = 10.0) -> dict:
    """The engine's /get_server_info once it answers; while it does not, a log line every
    `warn_every_s` (an engine loading a model takes minutes); past `timeout_s` the worker
    exits with the reason."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    warned = start - warn_every_s  # the first failure is said at once
    while True:
        try:
            return await engine.server_info()
        except EngineUnavailable as exc:
            waited = loop.time() - start
            if waited > timeout_s:
                raise SystemExit(f"ostinato worker: the engine at {engine.base_url} did not "
                                 f"answer within {timeout_s:g} s (worker.engine_start_timeout_s)"
                                 f": {exc}") from None
            if loop.time() - warned >= warn_every_s:
                warned = loop.time()
                log.warning("waiting for the engine", engine=engine.base_url,
                            waited_s=round(waited, 1), error=str(exc))
            await asyncio.sleep(0.2)


def reasoning_parser_mismatch(server_info: dict, expected: str) -> str | None:
    """What is wrong when the gateway reads a reasoning model (`expected`, its
    reasoning_parser) and the engine was launched with another --reasoning-parser, or none:
    SGLang's grammar backend then does not hold a constraint until the thinking ends
    (require_reasoning is ignored), and a thinking model's JSON answer or forced calls come
    out wrong. None when they agree, or the engine does not say (no `reasoning_parser` in
    its /get_server_info)."""
    if not expected or "reasoning_parser" not in server_info:
        return None
    launched = server_info.get("reasoning_parser") or ""
    if launched == expected:
        return None
    return (f"the engine runs with --reasoning-parser {launched or '(none)'} but the gateway "
            f"reads {expected}: launch it with --reasoning-parser {expected}, or constrained "
            "answers will not wait for the model's thinking")


def kv_capacity_blocks(server_info: dict) -> int:
    """The engine's KV pool in index blocks: what its cache can hold at most."""
    tokens = int(server_info.get("max_total_num_tokens") or 0) or 1_000_000
    return max(1, tokens // DEFAULT_BLOCK_SIZE)


class PlannerLink:
    """The worker's registration with the planner: its heartbeat, its engine's health, the
    calls it knows (the planner ends the grants it made here that the worker never started),
    and sending recent completion reports again to a planner that restarted."""

    def __init__(self, planner: planner_pb2_grpc.PlannerStub, service: WorkerService,
                 registration: planner_pb2.WorkerRegistration) -> None:
        self._planner = planner
        self._service = service
        self.registration = registration
        self._instance = ""  # the planner process registered with last

    async def register(self, timeout_s: float, *, wait_for_ready: bool = False,
                       first: bool = False) -> None:
        """Registers (a heartbeat); a first registration's failure is raised."""
        try:
            ack = await self._planner.RegisterWorker(self.heartbeat(), timeout=timeout_s,
                                                     wait_for_ready=wait_for_ready)
        except grpc.aio.AioRpcError as exc:
            if first:
                raise
            log.warning("planner unreachable", error=exc.code().name)
            return
        instance = ack.planner_instance
        if instance and instance != self._instance:
            if self._instance:  # a restarted planner: it may have lost acknowledged reports
                log.info("planner restarted: recent completion reports sent again",
                         reports=self._service.replay_reports())
            self._instance = instance

    def heartbeat(self) -> planner_pb2.WorkerRegistration:
        """The registration with the calls known now, meant for the planner process last
        heard from (a restarted one first gets the recent reports again, then the list)."""
        message = planner_pb2.WorkerRegistration()
        message.CopyFrom(self.registration)
        message.known_calls.SetInParent()  # present even when empty: "I report my calls"
        message.known_calls.planner_instance = self._instance
        message.known_calls.calls.extend(
            planner_pb2.CallAttempt(program_id=p, call_id=c, attempt=a)
            for p, c, a in self._service.known_calls())
        return message

    async def set_engine_healthy(self, healthy: bool) -> None:
        """Tells the planner at once (and on every heartbeat after)."""
        self._service.engine_healthy = healthy
        self.registration.engine_unhealthy = not healthy
        await self.register(5.0)


async def watch_engine_health(engine: SGLangClient, link: PlannerLink, grpc_service: GrpcService,
                              every_s: float, timeout_s: float,
                              service: WorkerService | None = None) -> None:
    """Probes the engine with SGLang's GET /health_generate every `every_s`. A probe that
    fails or takes longer than `timeout_s` (an engine that hangs) makes the worker
    unhealthy: the planner starts nothing here and the worker's gRPC health (its Worker
    service's: the process itself stays SERVING, so that a liveness probe does not restart
    a worker waiting for its engine; deploy review 2026-12-05 F3) is NOT_SERVING, until a
    probe passes again; the calls waiting on the engine then end UNAVAILABLE
    (`service.engine_hung`: those that streamed nothing run elsewhere)."""
    healthy = not link.registration.engine_unhealthy  # (what was told: this may be a restart)
    while True:
        await asyncio.sleep(every_s)
        ok = await engine.health_generate(timeout_s)
        if ok == healthy:
            continue
        healthy = ok
        if ok:
            log.info("engine healthy again", engine=engine.base_url)
        else:
            cut = service.engine_hung() if service is not None else 0
            log.warning("engine failed its health check: worker unhealthy", engine=engine.base_url,
                        timeout_s=timeout_s, calls_cut=cut)
        await grpc_service.set_serving(ok, process_too=False)
        await link.set_engine_healthy(ok)


async def clear_index(kv_index: KvIndex, worker_id: str, wait_s: float = 30.0) -> bool:
    """What a previous run of this worker indexed is not known to be held: cleared before
    the worker serves, tried again for `wait_s` while Redis is slow to answer (a helper's
    review: one failed try left the old blocks indexed, kept alive by this run's refreshes,
    and programs routed here for prefixes the engine no longer held); not while it refuses
    connections (not there: the worker serves without it at once). Whether it was."""
    backoff, deadline = 0.1, time.monotonic() + wait_s
    while not await kv_index.clear(worker_id):
        if not isinstance(kv_index.last_trouble, SLOW) or time.monotonic() + backoff >= deadline:
            log.warning("kv index: what a previous run indexed could not be cleared",
                        worker_id=worker_id, waited_s=wait_s)
            return False
        await asyncio.sleep(backoff)
        backoff = min(2.0, backoff * 2)
    return True


async def _launched(config: WorkerConfig, log_path: str | None,
                    telemetry: TelemetryConfig) -> tuple[WorkerConfig, EngineProcess]:
    """Starts the worker's own SGLang server; the config it then serves with (its URL and KV
    events endpoint)."""
    host = "127.0.0.1"
    port = config.engine_port or free_port(host)
    events, replay = kv_event_endpoints(f"engine-{port}") if config.kv_index else ("", "")
    spec = EngineLaunch(launch=config.engine_launch or default_launch(), model=config.engine_model,
                        host=host, port=port, kv_events_endpoint=events,
                        kv_replay_endpoint=replay, extra_args=config.engine_args,
                        reasoning_parser=config.engine_reasoning_parser,
                        otlp_traces_endpoint=telemetry.otlp_endpoint
                        if "otlp-grpc" in telemetry.exporters() else "")
    process = EngineProcess(spec, start_timeout_s=config.engine_start_timeout_s, log_path=log_path)
    url = await process.start()
    return replace(config, engine_url=url, engine_kv_events=events or config.engine_kv_events,
                   engine_kv_replay=replay or config.engine_kv_replay), process


async def serve(config: WorkerConfig, redis_cfg: RedisConfig | None = None,
                port_file: str | None = None, engine_log: str | None = None,
                telemetry: TelemetryConfig | None = None, reasoning_parser: str = "") -> None:
    """`reasoning_parser`: the gateway's (the mesh config's), checked against the engine's."""
    process: EngineProcess | None = None
    supervising: asyncio.Task[None] | None = None
    if config.engine == "sglang":
        try:
            config, process = await _launched(config, engine_log, telemetry or TelemetryConfig())
        except EngineStartError as exc:  # an expected failure: the reason, not a traceback
            raise SystemExit(f"ostinato worker: {exc}") from None
        supervising = asyncio.create_task(process.supervise())
    try:
        await _serve(config, redis_cfg, port_file, reasoning_parser)
    finally:
        if process is not None:
            await process.stop()
        if supervising is not None:
            supervising.cancel()


async def _serve(config: WorkerConfig, redis_cfg: RedisConfig | None,
                 port_file: str | None, reasoning_parser: str = "") -> None:
    grpc_service = GrpcService(
        [worker_pb2.DESCRIPTOR.services_by_name["Worker"].full_name], config.host, config.port
    )
    worker_id = config.worker_id or f"worker-{config.host}-{grpc_service.port}"
    engine = TracedSGLangClient(config.engine_url, timeout_s=config.engine_timeout_s,
                                connect_retries=config.engine_connect_retries)
    try:
        info = await _wait_for_engine(engine, config.engine_start_timeout_s)
    except SystemExit:
        await engine.close()
        raise
    engine.model = str(info.get("model_path", ""))
    mismatch = reasoning_parser_mismatch(info, reasoning_parser)
    if mismatch:
        log.warning("engine and gateway read reasoning differently", problem=mismatch,
                    engine=config.engine_url)
    grpc_service.tracing.describe(describers(worker_id))
    # every planner replica; calls go to the active one (planner/ha_channel.py)
    channel = planner_channel(config.planner_address, client_interceptors())
    planner = planner_pb2_grpc.PlannerStub(channel)
    redis_client = None
    kv_index = None
    if config.kv_index and redis_cfg is not None and redis_cfg.url:
        redis_client = from_config(redis_cfg)
        kv_index = KvIndex(redis_client, ttl_s=config.kv_ttl_s, timeout_s=redis_cfg.timeout_s)
        await clear_index(kv_index, worker_id)
    max_blocks = kv_capacity_blocks(info)
    listener: KvEventListener | None = None
    listening: asyncio.Task[None] | None = None
    if kv_index is not None and config.engine_kv_events:
        listener = KvEventListener(config.engine_kv_events, worker_id, KvEventTranslator(),
                                   kv_index, replay_endpoint=config.engine_kv_replay)
        listening = supervised(listener.run, "kv events")
    model = str(info.get("model_path", ""))
    metrics = WorkerMetrics(worker_id, model)
    service = WorkerService(worker_id, engine, planner, model=model,
                            kv_index=kv_index, tokenize=load_tokenizer(config.kv_tokenizer),
                            kv_events=listener, metrics=metrics)
    metrics.watch(service, max_blocks)
    service.drop_reports = config.debug_drop_reports
    service.generate_span = describers(worker_id)[GENERATE]  # GenerateStream's generations
    service.simulated = bool(info.get("simulated", False))
    worker_pb2_grpc.add_WorkerServicer_to_server(service, grpc_service.server)
    planner_link = PlannerLink(planner, service, planner_pb2.WorkerRegistration(
        worker_id=worker_id, address=config.advertise_address or grpc_service.address,
        max_inflight=config.max_inflight,
        simulated=service.simulated,
        kv_tokens=int(info.get("max_total_num_tokens") or 0),
    ))

    async def heartbeat() -> None:
        while True:
            await asyncio.sleep(config.heartbeat_s)
            if listener is not None:
                await listener.resync()
            elif kv_index is not None:
                await kv_index.refresh(worker_id, time.time(), config.kv_max_age_s, max_blocks)
            await planner_link.register(config.heartbeat_s)

    tasks: list[asyncio.Task[None]] = []

    async def on_started() -> None:
        try:
            await planner_link.register(FIRST_REGISTER_S, wait_for_ready=True, first=True)
        except grpc.aio.AioRpcError as exc:  # (docs review 2026-12-06: a raw traceback)
            log.error("planner unreachable: not registered", planner=config.planner_address,
                      error=exc.code().name)
            raise SystemExit(f"ostinato worker: the planner at {config.planner_address} did "
                             f"not take this worker's registration within {FIRST_REGISTER_S:g} s "
                             f"({exc.code().name}): start it first, or check "
                             "--planner-address") from None
        tasks.append(supervised(heartbeat, "heartbeat"))
        if config.health_check_s > 0:
            tasks.append(supervised(lambda: watch_engine_health(
                engine, planner_link, grpc_service, config.health_check_s,
                config.health_timeout_s, service), "engine health probes"))
        log.info("worker registered", worker_id=worker_id, engine=config.engine_url,
                 simulated=service.simulated)

    async def on_stopping() -> None:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(grpc.aio.AioRpcError):
            await planner.DeregisterWorker(planner_link.registration, timeout=2.0)
        # no new call comes: the running ones may finish (workers review 2026-12-05 F3:
        # they were cut after the server's 5 s grace, though the pod had 60 s)
        if service.running:
            log.info("draining", running=service.running, drain_s=config.drain_s)
            if await service.drained(config.drain_s):
                log.info("drained")
            else:
                log.warning("drain time is up: cutting the calls still running",
                            running=service.running)

    metrics_server = await serve_metrics(metrics.registry, config.host, config.metrics_port)
    port_info = {"engine_url": config.engine_url}
    if metrics_server is not None:
        port_info["metrics_address"] = metrics_server.address
    try:
        await grpc_service.run(port_file=port_file, on_started=on_started, on_stopping=on_stopping,
                               info=port_info)
    finally:
        for task in tasks:  # (on_stopping cancels them too; not reached if the start failed)
            task.cancel()
        if metrics_server is not None:
            await metrics_server.close()
        if listening is not None:
            listening.cancel()
        if listener is not None:
            listener.close()
        # the calls the server's stop cut end first (their engine aborts and completion
        # reports on their way), then the reports go, then the engine's and the planner's
        # connections close (deploy review 2026-12-05 F6: reports and aborts made after the
        # closes logged errors after "stopped")
        await service.drain_reports()
        await engine.close()
        await channel.close()
        if redis_client is not None:
            await redis_client.aclose()
