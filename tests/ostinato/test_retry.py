"""with_retry: which statuses are retried, and the budget."""

from __future__ import annotations

import grpc
import pytest

from ostinato.retry import RETRYABLE, RETRYABLE_IDEMPOTENT, with_retry


def _error(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), "x")


@pytest.mark.parametrize(("codes", "retry_on", "attempts", "raised"), [
    ([grpc.StatusCode.UNAVAILABLE, None], RETRYABLE, 2, None),
    ([grpc.StatusCode.CANCELLED, None], RETRYABLE, 1, grpc.StatusCode.CANCELLED),
    ([grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED, None], RETRYABLE_IDEMPOTENT, 3, None),
    ([grpc.StatusCode.INVALID_ARGUMENT, None], RETRYABLE_IDEMPOTENT, 1, grpc.StatusCode.INVALID_ARGUMENT),
])
async def test_retried_statuses(codes: list, retry_on: frozenset, attempts: int,
                                raised: grpc.StatusCode | None) -> None:
    calls = []

    async def rpc(request: object, timeout: float) -> str:
        code = codes[len(calls)]
        calls.append(timeout)
        if code is not None:
            raise _error(code)
        return "ok"

    if raised is None:
        assert await with_retry(rpc, None, 10.0, first_backoff_s=0.001, retry_on=retry_on) == "ok"
    else:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await with_retry(rpc, None, 10.0, first_backoff_s=0.001, retry_on=retry_on)
        assert err.value.code() == raised
    assert len(calls) == attempts and all(0 < t <= 10.0 for t in calls)
