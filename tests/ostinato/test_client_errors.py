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


@pytest.mark.parametrize("timeout_s", [0, 0.0, -1, "5", float("nan"), float("inf"), True])
def test_a_bad_timeout_is_refused_when_the_client_is_made(timeout_s: object) -> None:
    """(SDK review 2026-12-05: 0 was taken, every operation then DEADLINE_EXCEEDED; "5"
    failed inside gRPC at the first call.) No channel is opened, no thread left."""
    import asyncio
    import threading

    threads = threading.active_count()
    with pytest.raises(ValueError, match="timeout_s must be a number of seconds above 0"):
        ostinato.Client("127.0.0.1:1", timeout_s=timeout_s)  # type: ignore[arg-type]
    assert threading.active_count() == threads

    async def made() -> None:
        ostinato.AsyncClient("127.0.0.1:1", timeout_s=timeout_s)  # type: ignore[arg-type]

    with pytest.raises(ValueError, match="timeout_s must be a number of seconds above 0"):
        asyncio.run(made())


def test_an_async_client_made_outside_its_loop_says_so_at_once() -> None:
    """(SDK review 2026-12-05: it failed only at the first RPC, "attached to a different
    loop".)"""
    with pytest.raises(RuntimeError, match="must be made inside the event loop that uses it"):
        ostinato.AsyncClient("127.0.0.1:1")
