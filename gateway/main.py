"""`ostinato gateway`: the public gRPC edge."""

from __future__ import annotations

import asyncio
import contextlib

import grpc
import redis.asyncio as aioredis
import structlog

from cache.answers import AnswerCache
from cache.embedder import BatchingEmbedder, MiniLM
from cache.loading import BackgroundEncoder
from cache.modes import CacheMode, CachePolicy
from gateway.auth import ApiKeyAuthenticator
from gateway.execution import CallExecutor
from gateway.service import GatewayService
from gateway.worker_channels import WorkerChannels
from ostinato.config import GatewayConfig, RedisConfig
from ostinato.serving import GrpcService
from ostinato.v1 import gateway_pb2, gateway_pb2_grpc, planner_pb2_grpc

log = structlog.get_logger(__name__)


def _answer_cache(config: GatewayConfig, redis_cfg: RedisConfig) -> AnswerCache | None:
    if not redis_cfg.url or (config.cache_mode == "off" and not config.semantic_cache):
        return None
    client = aioredis.from_url(redis_cfg.url, socket_timeout=redis_cfg.timeout_s,
                               socket_connect_timeout=redis_cfg.timeout_s)
    embedder = BatchingEmbedder(BackgroundEncoder(MiniLM)) if config.semantic_cache else None
    return AnswerCache(client, embedder, ttl_s=config.cache_ttl_s,
                       max_entries_per_tenant=config.cache_max_entries_per_tenant,
                       timeout_s=redis_cfg.timeout_s)


async def serve(config: GatewayConfig, redis_cfg: RedisConfig | None = None,
                port_file: str | None = None) -> None:
    grpc_service = GrpcService(
        [gateway_pb2.DESCRIPTOR.services_by_name["Gateway"].full_name], config.host, config.port
    )
    channel = grpc.aio.insecure_channel(config.planner_address)
    planner = planner_pb2_grpc.PlannerStub(channel)
    workers = WorkerChannels()
    cache = _answer_cache(config, redis_cfg or RedisConfig())
    sync: asyncio.Task[None] | None = None
    if cache is not None:
        await cache.start()
        sync = asyncio.create_task(cache.run_sync())
        log.info("answer caches on", mode=config.cache_mode, semantic=config.semantic_cache,
                 entries=len(cache.index))
    default = CachePolicy(CacheMode(config.cache_mode), config.semantic_threshold)
    service = GatewayService(
        config, ApiKeyAuthenticator(config.api_keys, config.allow_anonymous), planner,
        CallExecutor(planner, workers, cache, default), cache,
    )
    gateway_pb2_grpc.add_GatewayServicer_to_server(service, grpc_service.server)
    try:
        await grpc_service.run(port_file=port_file)
    finally:
        if sync is not None:
            sync.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sync
        await workers.close()
        await channel.close()
