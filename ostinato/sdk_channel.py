"""The SDK's connection to a gateway: its grpc.aio channel (TLS or plaintext, with the retry
policy of sdk_types.CHANNEL_OPTIONS), the Gateway's methods typed, and each RPC's metadata
(API key, the caller's trace context) and deadline."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

import grpc
from opentelemetry import propagate

from ostinato.errors import OstinatoError, Unavailable, from_rpc_error
from ostinato.sdk_types import CHANNEL_OPTIONS, UNARY_DEADLINE_S
from ostinato.v1 import gateway_pb2, gateway_pb2_grpc

Pem = bytes | str | os.PathLike[str]  # PEM bytes, or the path of a PEM file


def _pem(source: Pem | None) -> bytes | None:
    if source is None or isinstance(source, bytes):
        return source
    return Path(source).read_bytes()


@dataclass(frozen=True)
class Tls:
    """TLS for the gateway's gRPC port. `root_certificates`: the CAs that sign the gateway's
    certificate (None: the system's); `client_certificate` and `client_key` together: this
    client's own certificate, for a gateway that asks for one (mutual TLS); `server_name`: the
    name to check the gateway's certificate against when it is not the address's host."""

    root_certificates: Pem | None = None
    client_certificate: Pem | None = None
    client_key: Pem | None = None
    server_name: str | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        if (self.client_certificate is None) != (self.client_key is None):
            raise ValueError("Tls: client_certificate and client_key go together (mutual TLS)")
        return grpc.ssl_channel_credentials(root_certificates=_pem(self.root_certificates),
                                            private_key=_pem(self.client_key),
                                            certificate_chain=_pem(self.client_certificate))


def open_channel(address: str, tls: bool | Tls = False) -> grpc.aio.Channel:
    """A channel on the running event loop; `tls=True`: TLS with the system's CAs."""
    if tls is False:
        return grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
    config = Tls() if tls is True else tls
    options = CHANNEL_OPTIONS
    if config.server_name:
        options = (*options, ("grpc.ssl_target_name_override", config.server_name))
    return grpc.aio.secure_channel(address, config.credentials(), options=options)


class GatewayRpcs:
    """The Gateway's methods on a channel, typed (the generated stub is not), with the
    metadata and deadline every RPC of one client carries."""

    def __init__(self, channel: grpc.aio.Channel, api_key: str | None,
                 timeout_s: float | None, address: str = "") -> None:
        self._channel, self.address = channel, address
        self._loop = asyncio.get_running_loop()  # the channel's: every RPC is made on it
        stub = gateway_pb2_grpc.GatewayStub(channel)  # type: ignore[no-untyped-call]
        self.start_program: grpc.aio.UnaryUnaryMultiCallable[
            gateway_pb2.StartProgramRequest, gateway_pb2.StartProgramResponse] = stub.StartProgram
        self.call: grpc.aio.UnaryStreamMultiCallable[
            gateway_pb2.CallRequest, gateway_pb2.CallChunk] = stub.Call
        self.call_whole: grpc.aio.UnaryUnaryMultiCallable[
            gateway_pb2.CallRequest, gateway_pb2.CallChunk] = stub.CallWhole
        self.call_whole_served = True  # False once a gateway said UNIMPLEMENTED (older)
        self.end_program: grpc.aio.UnaryUnaryMultiCallable[
            gateway_pb2.EndProgramRequest, gateway_pb2.EndProgramResponse] = stub.EndProgram
        self.run_program: grpc.aio.UnaryStreamMultiCallable[
            gateway_pb2.RunProgramRequest, gateway_pb2.ProgramEvent] = stub.RunProgram
        self.cache_stats: grpc.aio.UnaryUnaryMultiCallable[
            gateway_pb2.CacheStatsRequest, gateway_pb2.CacheStatsResponse] = stub.CacheStats
        self._auth = (("authorization", f"Bearer {api_key}"),) if api_key else ()
        self.timeout_s = timeout_s  # None: calls have none, other RPCs sdk_types.UNARY_DEADLINE_S
        # StartProgram, EndProgram, CacheStats: the client's deadline, longer or shorter than
        # the default (the service config sets none: gRPC takes the shorter of two)
        self.unary_timeout_s = UNARY_DEADLINE_S if timeout_s is None else timeout_s

    def error(self, exc: grpc.RpcError) -> OstinatoError:
        """The exception for a failed RPC. One that ran out of time while the channel was
        failing to connect (RPCs wait for the gateway, so that a restarting one is waited
        for) says so: Unavailable, naming the address, not a bare "Deadline Exceeded"."""
        code = getattr(exc, "code", lambda: None)()
        # CONNECTING: a connection accepted but never set up (a gateway stopped or frozen,
        # its port still open: SDK review 2026-12-06)
        if code == grpc.StatusCode.DEADLINE_EXCEEDED and self._channel.get_state() in (
                grpc.ChannelConnectivity.TRANSIENT_FAILURE, grpc.ChannelConnectivity.CONNECTING):
            return Unavailable(grpc.StatusCode.UNAVAILABLE,
                               f"cannot reach the gateway at {self.address or 'its address'}: "
                               "no connection before the deadline (the gateway is down, "
                               "restarting or not answering, or this client's TLS settings "
                               "do not match its: "
                               "plaintext to a TLS port or TLS to a plaintext one, no client "
                               "certificate where one is required, a certificate for another "
                               "name)")
        return from_rpc_error(exc)

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """The API key, and the caller's current OpenTelemetry context (W3C traceparent) so
        the mesh continues the caller's trace. (Read as each RPC is made: one made on another
        event loop than the client's is refused here, by name, not with gRPC's "Event loop
        is closed" or a hang.)"""
        if asyncio.get_running_loop() is not self._loop:
            raise RuntimeError("this ostinato.AsyncClient was made in another event loop (a "
                               "gRPC channel belongs to the loop it was made in): make one "
                               "in each loop, e.g. `async with ostinato.AsyncClient(...)` "
                               "inside the function asyncio.run runs")
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        return (*self._auth, *carrier.items())
