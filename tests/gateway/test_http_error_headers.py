"""What an HTTP error tells a client about retrying it (gateway/http_errors.py HttpError): when
(Retry-After) or that it should not (x-should-retry: false, which the openai SDK obeys; it
retries 409s and 429s otherwise: HTTP API review 2026-12-05 F4)."""

from __future__ import annotations

import grpc
import pytest

from gateway.call_items import CallFailed
from gateway.http_errors import HttpError


@pytest.mark.parametrize(("error", "retry_after", "should_retry"), [
    # over a rate for now: retry after
    (CallFailed(grpc.StatusCode.RESOURCE_EXHAUSTED, "over quota", retry_after_s=2.5), "3", None),
    # over a limit as it is (a prompt past the tpm, the conversations' cap): never
    (CallFailed(grpc.StatusCode.RESOURCE_EXHAUSTED, "never fits", final=True), None, "false"),
    # a call id used twice: the same request conflicts again
    (CallFailed(grpc.StatusCode.ALREADY_EXISTS, "call c1 exists"), None, "false"),
    (CallFailed(grpc.StatusCode.UNAVAILABLE, "planner down"), None, None),
    # no planner for the gateway's whole wait: later, by the application, not by the SDK
    # (whose retries would each wait as long again)
    (CallFailed(grpc.StatusCode.UNAVAILABLE, "no planner", retry_after_s=5.0, retried=True),
     "5", "false"),
    (CallFailed(grpc.StatusCode.INVALID_ARGUMENT, "bad"), None, None),
])
def test_retry_headers(error: CallFailed, retry_after: str | None,
                       should_retry: str | None) -> None:
    headers = HttpError.of(error).response().headers
    assert headers.get("Retry-After") == retry_after
    assert headers.get("x-should-retry") == should_retry
