"""`ostinato gateway`: the public gRPC edge."""

from __future__ import annotations

import grpc

from gateway.auth import ApiKeyAuthenticator
from gateway.execution import CallExecutor
from gateway.service import GatewayService
from gateway.worker_channels import WorkerChannels
from ostinato.config import GatewayConfig
from ostinato.serving import GrpcService
from ostinato.v1 import gateway_pb2, gateway_pb2_grpc, planner_pb2_grpc


async def serve(config: GatewayConfig, port_file: str | None = None) -> None:
    grpc_service = GrpcService(
        [gateway_pb2.DESCRIPTOR.services_by_name["Gateway"].full_name], config.host, config.port
    )
    channel = grpc.aio.insecure_channel(config.planner_address)
    planner = planner_pb2_grpc.PlannerStub(channel)
    workers = WorkerChannels()
    service = GatewayService(
        config, ApiKeyAuthenticator(config.api_keys, config.allow_anonymous), planner,
        CallExecutor(planner, workers),
    )
    gateway_pb2_grpc.add_GatewayServicer_to_server(service, grpc_service.server)
    try:
        await grpc_service.run(port_file=port_file)
    finally:
        await workers.close()
        await channel.close()
