"""Running a grpc.aio service: health and reflection, port files, graceful shutdown on signals."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from ostinato.collector import freeze_after_start
from ostinato.grpc_decoding import DecodeErrorInterceptor
from tracing.grpc_interceptors import TracingServerInterceptor

log = structlog.get_logger(__name__)

GRACE_S = 5.0


def write_port_file(path: str | None, **info: object) -> None:
    """Atomically writes JSON describing a started service (its bound port, address ...)."""
    if not path:
        return
    target = Path(path)
    tmp = target.with_suffix(target.suffix + ".tmp")
    tmp.write_text(json.dumps(info))
    os.replace(tmp, target)


SERVER_OPTIONS = (("grpc.max_receive_message_length", 64 * 1024 * 1024),
                  ("grpc.so_reuseport", 0),
                  # keepalive pings every 4 s (the planner's callers: planner/ha_channel.py)
                  # and 10 s (a gateway's to its workers: gateway/worker_channels.py) are
                  # taken, not answered with GOAWAY
                  ("grpc.http2.min_ping_interval_without_data_ms", 2_000),
                  ("grpc.keepalive_permit_without_calls", 1))


class GrpcService:
    """A grpc.aio server with the standard health and reflection services, continuing its
    callers' traces (`tracing.describe(...)` adds server spans for chosen methods)."""

    def __init__(self, service_names: Sequence[str], host: str, port: int,
                 credentials: grpc.ServerCredentials | None = None,
                 interceptors: Sequence[grpc.aio.ServerInterceptor] = ()) -> None:
        """`credentials`: serve TLS (grpc.ssl_server_credentials); None: plaintext.
        `interceptors` run after tracing's."""
        self.tracing = TracingServerInterceptor()
        # A standby (planner HA) starts alive (health "" SERVING) with its services
        # NOT_SERVING, until `set_serving(True)`.
        self.standby = False
        self.grace_s = GRACE_S  # how long in-flight calls may finish once stopping
        self._stop = asyncio.Event()
        self.server = grpc.aio.server(
            # bad wire bytes: INVALID_ARGUMENT before the trace starts (ostinato/grpc_decoding.py)
            interceptors=[DecodeErrorInterceptor(), self.tracing, *interceptors],
            options=SERVER_OPTIONS)
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self._names = list(service_names)
        reflection.enable_server_reflection(
            [*self._names, health.SERVICE_NAME, reflection.SERVICE_NAME], self.server
        )
        self.port = (self.server.add_insecure_port(f"{host}:{port}") if credentials is None
                     else self.server.add_secure_port(f"{host}:{port}", credentials))
        if self.port == 0:
            raise RuntimeError(f"could not bind {host}:{port}")
        self.address = f"{host}:{self.port}"

    async def set_serving(self, serving: bool, *, process_too: bool = True) -> None:
        """The services' health; with `process_too`, the server's as a whole ("") too. A
        process alive but not fit to serve (a planner standby, a worker whose engine failed
        its health check) keeps "" SERVING: a liveness probe asks "", readiness a service."""
        status = (health_pb2.HealthCheckResponse.SERVING if serving
                  else health_pb2.HealthCheckResponse.NOT_SERVING)
        for name in ["", *self._names] if process_too else self._names:
            await self.health.set(name, status)

    def request_stop(self) -> None:
        """Stops `run` as SIGTERM would (a planner whose lease was lost)."""
        self._stop.set()

    async def run(
        self,
        *,
        port_file: str | None = None,
        on_started: Callable[[], Awaitable[None]] | None = None,
        on_stopping: Callable[[], Awaitable[None]] | None = None,
        info: Mapping[str, object] | None = None,
    ) -> None:
        """Starts, reports SERVING, waits for SIGTERM/SIGINT, then stops gracefully. `info`
        goes into the port file beside the gRPC address (e.g. an HTTP address)."""
        stop = self._stop
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await self.server.start()
        if self.standby:  # before on_started, which may start what turns it active
            await self.set_serving(False)
            await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        if on_started is not None:
            try:
                await on_started()
            except BaseException:  # it cannot serve: the server goes before the loop does
                await self.server.stop(0)
                raise
        if not self.standby:
            await self.set_serving(True)
        freeze_after_start()  # (the planner froze its restored programs already)
        write_port_file(port_file, port=self.port, address=self.address, pid=os.getpid(),
                        **(info or {}))
        log.info("serving", address=self.address, services=self._names)
        await stop.wait()
        log.info("stopping", grace_s=self.grace_s)
        await self.set_serving(False)
        if on_stopping is not None:
            await on_stopping()
        await self.server.stop(self.grace_s)
        log.info("stopped")
