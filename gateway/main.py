"""`ostinato gateway`: the public gRPC edge."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import cast

import grpc
import structlog

from cache.answers import AnswerCache
from cache.conversation_store import ConversationStore
from cache.conversations import ConversationIndex
from cache.embedder import BatchingEmbedder, MiniLM
from cache.modes import CacheMode, CachePolicy
from cache.outage import outage_of
from cache.quotas import Quotas
from cache.redis_client import FAILURES, AsyncClient, from_config
from cache.stored_responses import StoredResponses
from cache.tenancy_view import TenancyView
from cache.tenant_directory import TenantDirectory
from gateway.admissions import Admissions
from gateway.auth import ApiKeyAuthenticator
from gateway.context_window import ContextWindow
from gateway.execution import CallExecutor
from gateway.http_api import OpenAiApi
from gateway.http_server import start_http
from gateway.metrics import GatewayMetrics
from gateway.service import GatewayService
from gateway.spans import TracedAnswerCache, TracedGatewayCore
from gateway.trace_context import TraceContextStub
from gateway.worker_channels import WorkerChannels
from ostinato.config import GatewayConfig, RedisConfig, TelemetryConfig
from ostinato.event_loop import in_daemon_thread
from ostinato.serving import GrpcService
from ostinato.supervised import supervised
from ostinato.tokenizers import load_renderer, load_tokenizer
from ostinato.v1 import gateway_pb2, gateway_pb2_grpc, planner_pb2_grpc
from planner.ha_channel import planner_channel
from tracing.metrics_http import serve_metrics
from tracing.program_ends import ProgramEnds

log = structlog.get_logger(__name__)


async def _embedder(config: GatewayConfig) -> BatchingEmbedder | None:
    """The embedding model, loaded before the gateway serves: importing torch and
    sentence-transformers holds the GIL for seconds, which would stall a serving event loop
    (and time out its Redis calls). A load failure turns the semantic cache off."""
    if not config.semantic_cache:
        return None
    try:
        return BatchingEmbedder(await in_daemon_thread(MiniLM, "embedding-model-load"))
    except Exception as exc:
        log.error("embedding model failed to load: semantic cache off", error=repr(exc))
        return None


async def _answer_cache(config: GatewayConfig, client: AsyncClient | None,
                        redis_cfg: RedisConfig) -> AnswerCache | None:
    if client is None or (config.cache_mode == "off" and not config.semantic_cache):
        return None
    embedder = await _embedder(config)
    return TracedAnswerCache(client, embedder, ttl_s=config.cache_ttl_s,
                       max_entries_per_tenant=config.cache_max_entries_per_tenant,
                       timeout_s=redis_cfg.timeout_s, semantic_index=config.semantic_index)


async def _tenancy(config: GatewayConfig, client: AsyncClient | None,
                   redis_cfg: RedisConfig) -> TenancyView:
    """Tenants, API-key digests and shared prefixes from Redis; configured keys are written
    there first. Without Redis, the configured keys alone."""
    configured = ApiKeyAuthenticator.snapshot_of(config.api_keys)
    if client is None:
        return TenancyView(None, configured)
    directory = TenantDirectory(client, redis_cfg.timeout_s)
    view = TenancyView(directory, configured, seed=config.api_keys)
    try:
        await view.seed()  # a key that belongs to another tenant stops the start
    except FAILURES as exc:
        log.warning("tenancy: could not write configured keys to redis (tried again at "
                    "each full reload; served by this gateway meanwhile)",
                    error=str(exc) or type(exc).__name__)
    await view.reload(seed=False)  # (the seed was just tried: a failed one waits for the next)
    return view


def _server_credentials(config: GatewayConfig) -> grpc.ServerCredentials | None:
    """TLS for the gRPC port when configured (gateway.tls_*); None: plaintext."""
    if not config.tls_cert_file:
        return None
    client_ca = Path(config.tls_client_ca_file).read_bytes() if config.tls_client_ca_file else None
    return grpc.ssl_server_credentials(
        [(Path(config.tls_key_file).read_bytes(), Path(config.tls_cert_file).read_bytes())],
        root_certificates=client_ca, require_client_auth=client_ca is not None)


async def _expire_program_spans(core: TracedGatewayCore, idle_s: float) -> None:
    """Program spans end when the planner would expire their programs, whether or not
    another program starts (tracing review 2026-12-05 F3)."""
    while True:
        await asyncio.sleep(min(60.0, max(0.5, idle_s / 4)))
        core.programs.expire()


async def serve(config: GatewayConfig, redis_cfg: RedisConfig | None = None,
                port_file: str | None = None, telemetry: TelemetryConfig | None = None,
                program_idle_s: float = 1800.0,
                tenant_weights: Mapping[str, float] | None = None) -> None:
    """`program_idle_s`: the planner's program_idle_ttl_s (a program's span is ended when
    the planner would expire the program); `tenant_weights`: the planner's configured
    fair-share weights (tenant records override them), for the tenants' shares of
    `max_inflight_calls`."""
    telemetry = telemetry or TelemetryConfig()
    grpc_service = GrpcService(
        [gateway_pb2.DESCRIPTOR.services_by_name["Gateway"].full_name], config.host, config.port,
        credentials=_server_credentials(config),
    )
    grpc_service.grace_s = config.drain_s  # the HTTP requests get it too (stop_http)
    # every planner replica; calls go to the active one (planner/ha_channel.py)
    # (no client interceptors: each call carries the trace context, gateway/trace_context.py)
    channel = planner_channel(config.planner_address)
    planner = cast(planner_pb2_grpc.PlannerStub,
                   TraceContextStub(planner_pb2_grpc.PlannerStub(channel)))
    workers = WorkerChannels()
    admissions = Admissions(planner)  # Admit over one stream (gateway/admissions.py)
    redis_cfg = redis_cfg or RedisConfig()
    client = from_config(redis_cfg) if redis_cfg.url else None
    cache = await _answer_cache(config, client, redis_cfg)
    sync: asyncio.Task[None] | None = None
    if cache is not None:
        await cache.start()
        sync = supervised(cache.run_sync, "answer cache upkeep")
        log.info("answer caches on", mode=config.cache_mode, semantic=config.semantic_cache,
                 index=cache.index.name, entries=len(cache.index))
    default = CachePolicy(CacheMode(config.cache_mode), config.semantic_threshold)
    tenancy = await _tenancy(config, client, redis_cfg)
    configured_weights = dict(tenant_weights or {})
    tasks = [supervised(tenancy.run, "tenancy reloads")]
    auth = ApiKeyAuthenticator(lambda: tenancy.current, config.allow_anonymous)
    if config.allow_anonymous:  # (`up --no-auth` and the demo say so too; a bare gateway here)
        log.warning("auth off (gateway.allow_anonymous): anyone reaching the gateway is tenant "
                    "'default'")
    executor = CallExecutor(planner, workers, cache, default, lambda: tenancy.current,
                            tokenize=load_tokenizer(config.kv_tokenizer),
                            renderer=load_renderer(config.kv_tokenizer, config.tool_call_parser),
                            tool_format=config.tool_call_parser,
                            reasoning_format=config.reasoning_parser,
                            quotas=Quotas(client) if client is not None else None,
                            quota_timeout_s=redis_cfg.timeout_s,
                            admissions=admissions,
                            early_start_max_tokens=config.early_start_max_tokens,
                            early_start_fresh_s=config.early_start_fresh_s,
                            window=ContextWindow(config.context_length,
                                                 config.default_output_tokens,
                                                 config.max_input_tokens))
    conversations = ConversationIndex(client, config.conversation_ttl_s, redis_cfg.timeout_s) \
        if client is not None else None
    metrics = GatewayMetrics(config.model)
    metrics.watch(cache, lambda: tenancy.stale, outage_of(client) if client is not None else None,
                  lambda: executor.unmetered, lambda: executor.early_starts)
    core = TracedGatewayCore(config, auth, planner, executor, cache, conversations,
                             lambda: tenancy.stale, lambda t: tenancy.current.limits_of(t),
                             lambda t: tenancy.current.weight_of(t, configured_weights),
                             record_content=telemetry.record_content,
                             program_idle_s=program_idle_s, metrics=metrics)
    tasks.append(supervised(lambda: _expire_program_spans(core, program_idle_s),
                            "program span expiry"))
    if client is not None:  # a program started through another replica may end through this one
        ends = core.program_ends = ProgramEnds(client, redis_cfg.timeout_s)
        tasks.append(supervised(lambda: ends.run(
            lambda program_id, attributes: core.span_ended(program_id, attributes)),
            "program ends tail"))
    gateway_pb2_grpc.add_GatewayServicer_to_server(GatewayService(core), grpc_service.server)
    info: dict[str, object] = {}
    runner = None
    api = None
    if config.http_port >= 0:
        stored = StoredResponses(
            client, config.responses_ttl_s, redis_cfg.timeout_s,
            max_bytes=config.max_stored_response_bytes_per_tenant) if client is not None else None
        kept = ConversationStore(
            client, config.responses_ttl_s, redis_cfg.timeout_s,
            max_conversations=config.max_conversations_per_tenant,
            max_bytes=config.max_conversation_bytes,
            max_tenant_bytes=config.max_conversation_bytes_per_tenant) if client is not None else None
        api = OpenAiApi(core, metrics, stored, kept)
        runner, http_port = await start_http(api, config.host, config.http_port,
                                             grace_s=grpc_service.grace_s)
        info["http_address"] = f"{config.host}:{http_port}"
        log.info("OpenAI-compatible HTTP API", address=info["http_address"])
    # Prometheus on a port of its own (its tenant labels stay off the public ports)
    metrics_server = await serve_metrics(metrics.registry, config.host, config.metrics_port)
    if metrics_server is not None:
        info["metrics_address"] = metrics_server.address
    http_stopped: asyncio.Task[int] | None = None

    async def stop_http() -> None:  # beside gRPC's grace, which the HTTP requests get too
        nonlocal http_stopped
        if runner is not None and api is not None:
            http_stopped = asyncio.create_task(api.draining.stop(runner, grpc_service.grace_s))

    try:
        await grpc_service.run(port_file=port_file, info=info, on_stopping=stop_http)
    finally:
        if http_stopped is not None:
            cut = await http_stopped
            if cut:
                log.warning("HTTP requests cut short by the shutdown", requests=cut)
        elif runner is not None:
            await runner.cleanup()
        core.programs.end_all("shutdown")
        if metrics_server is not None:
            await metrics_server.close()
        for task in tasks:
            task.cancel()
        if sync is not None:
            sync.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sync
        await workers.close()
        await admissions.close()
        await channel.close()
        if client is not None:
            await client.aclose()
