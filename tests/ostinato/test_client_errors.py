"""errors.from_rpc_error: a failed RPC (sync or asyncio gRPC) as the SDK's exception."""

from __future__ import annotations

import grpc
import pytest

import ostinato
from ostinato.errors import from_rpc_error


def _aio(code: grpc.StatusCode, details: str, trailers: tuple[tuple[str, str], ...] = ()
         ) -> grpc.RpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(*trailers), details)


@pytest.mark.parametrize(("exc", "cls", "message"), [
    (_aio(grpc.StatusCode.UNAVAILABLE, "worker went away"), ostinato.Unavailable, "worker went away"),
    (_aio(grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down", (("retry-after-ms", "250"),)),
     ostinato.RateLimited, "slow down"),
    (_aio(grpc.StatusCode.DATA_LOSS, ""), ostinato.OstinatoError, ""),
    (grpc.RpcError("no status at all"), ostinato.OstinatoError, "no status at all"),
])
def test_a_failed_rpc_becomes_its_exception(exc: grpc.RpcError, cls: type, message: str) -> None:
    err = from_rpc_error(exc)
    assert type(err) is cls and err.message == message
    if isinstance(err, ostinato.RateLimited):
        assert err.retry_after_s == 0.25
