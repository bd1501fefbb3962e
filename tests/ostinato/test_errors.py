"""The SDK's exceptions: one class per status a caller handles differently."""

from __future__ import annotations

import grpc
import pytest

import ostinato
from ostinato.errors import error_for


@pytest.mark.parametrize(("code", "cls"), [
    (grpc.StatusCode.INVALID_ARGUMENT, ostinato.InvalidArgument),
    (grpc.StatusCode.UNAUTHENTICATED, ostinato.Unauthenticated),
    (grpc.StatusCode.NOT_FOUND, ostinato.NotFound),
    (grpc.StatusCode.ALREADY_EXISTS, ostinato.AlreadyExists),
    (grpc.StatusCode.FAILED_PRECONDITION, ostinato.FailedPrecondition),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, ostinato.RateLimited),
    (grpc.StatusCode.UNAVAILABLE, ostinato.Unavailable),
    (grpc.StatusCode.DEADLINE_EXCEEDED, ostinato.DeadlineExceeded),
    (grpc.StatusCode.CANCELLED, ostinato.Cancelled),
    (grpc.StatusCode.INTERNAL, ostinato.OstinatoError),
])
def test_each_status_has_its_exception(code: grpc.StatusCode, cls: type) -> None:
    exc = error_for(code, "why")
    assert type(exc) is cls and isinstance(exc, ostinato.OstinatoError)
    assert exc.code is code and exc.message == "why" and str(exc) == f"{code.name}: why"


@pytest.mark.parametrize(("trailers", "retry_after_s"), [
    ((("retry-after-ms", "1500"),), 1.5),
    ((), None),
    ((("retry-after-ms", "soon"),), None),
])
def test_rate_limited_reads_when_to_retry(trailers: tuple, retry_after_s: float | None) -> None:
    exc = error_for(grpc.StatusCode.RESOURCE_EXHAUSTED, "over quota", trailers)
    assert isinstance(exc, ostinato.RateLimited) and exc.retry_after_s == retry_after_s
