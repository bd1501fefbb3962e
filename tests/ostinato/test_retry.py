"""with_retry: which statuses are retried, and the budget."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from ostinato import retry
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


async def test_attempts_refused_at_once_give_up_after_failing_for_s() -> None:
    """No planner serving: every Admit fails UNAVAILABLE at once. The call gives up after
    `failing_for_s`, not at the end of its (10-minute) budget (deploy review 2026-12-05 F2)."""
    calls = []

    async def rpc(request: object, timeout: float) -> str:
        calls.append(timeout)
        raise _error(grpc.StatusCode.UNAVAILABLE)

    start = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await with_retry(rpc, None, 600.0, first_backoff_s=0.001, max_backoff_s=0.01,
                         failing_for_s=0.2)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE and len(calls) > 1
    assert time.monotonic() - start < 60  # (bounded by failing_for_s; 60: a busy machine)


async def test_an_attempt_that_waited_before_it_failed_starts_the_count_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An admission queued at a planner that then died is no refusal: the count of failing
    time starts again at the next attempt, and the call goes on until its budget."""
    monkeypatch.setattr(retry, "_AT_ONCE_S", 0.01)
    calls = []

    async def rpc(request: object, timeout: float) -> str:
        calls.append(timeout)
        await asyncio.sleep(0.05)  # served (queued) for a while, then the planner went away
        raise _error(grpc.StatusCode.UNAVAILABLE)

    start = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError):
        await with_retry(rpc, None, 0.5, first_backoff_s=0.001, max_backoff_s=0.01,
                         failing_for_s=0.06)
    assert time.monotonic() - start >= 0.4  # its budget, not failing_for_s


@pytest.mark.parametrize("details", [
    # (gRPC's words: the call never left the channel, no connection to a planner came up)
    "admission stream: UNAVAILABLE: connections to all backends failing; last error: UNKNOWN: "
    "ipv4:127.0.0.1:1: connection attempt timed out before receiving SETTINGS frame",
    # (the connection closed by keepalive: its planner stopped answering, frozen)
    "admission stream: UNAVAILABLE: Stream removed (ping timeout)",
])
async def test_attempts_that_waited_on_a_planner_answering_nothing_do_not_start_the_count_again(
        monkeypatch: pytest.MonkeyPatch, details: str) -> None:
    """A planner frozen (SIGSTOP: its connections open, nothing answered): attempts hang until
    gRPC gives up on it, then fail UNAVAILABLE; they count as failing time, so the call
    fails after `failing_for_s` (HTTP 503), not at the end of its budget."""
    monkeypatch.setattr(retry, "_AT_ONCE_S", 0.01)
    # (keepalive time + timeout: no attempt below lasts longer, none was served)
    monkeypatch.setattr(retry, "SILENT_S", 1.0)

    async def rpc(request: object, timeout: float) -> str:
        await asyncio.sleep(0.05)
        raise grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(),
                                   grpc.aio.Metadata(), details)

    start = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError):
        await with_retry(rpc, None, 30.0, first_backoff_s=0.001, max_backoff_s=0.01,
                         failing_for_s=0.3)
    assert time.monotonic() - start < 20  # failing_for_s (0.3 s), not the budget (30 s)


def test_a_planner_that_answered_before_it_went_silent_has_its_wait_counted_from_then(
        ) -> None:
    """An admission queued for a while at a planner that then froze: the count starts when
    its planner last answered (SILENT_S before its connection was given up), so the call
    still has most of `failing_for_s` to find the standby."""
    error = grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(),
                                 grpc.aio.Metadata(), "Stream removed (ping timeout)")
    assert retry._failing_since(error, began=0.0, now=100.0, since=None) == 100.0 - retry.SILENT_S
    assert retry._failing_since(error, began=95.0, now=100.0, since=None) == 95.0
    assert retry._failing_since(error, began=95.0, now=100.0, since=90.0) == 90.0
    killed = grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(),
                                  grpc.aio.Metadata(), "Socket closed")
    assert retry._failing_since(killed, began=0.0, now=100.0, since=None) == 100.0


async def test_a_call_during_a_long_outage_makes_one_attempt() -> None:
    """Calls to one peer share their Outage: the first gives up after `failing_for_s` of
    attempts refused at once; the next, started during the outage, fails after one attempt
    (not a wait of its own); an answer ends the outage, and the next failing call retries."""
    outage = retry.Outage()
    calls: list[str] = []
    answer: list[grpc.StatusCode | None] = [grpc.StatusCode.UNAVAILABLE]

    async def rpc(request: str, timeout: float) -> str:
        calls.append(request)
        if answer[0] is not None:
            raise _error(answer[0])
        return "ok"

    async def call(name: str) -> str:
        return await with_retry(rpc, name, 600.0, first_backoff_s=0.001, max_backoff_s=0.01,
                                failing_for_s=0.5, outage=outage)

    with pytest.raises(grpc.aio.AioRpcError):
        await call("first")
    assert calls.count("first") > 1 and outage.since is not None
    # The first call gave up as its next attempt would have passed 0.5 s; the outage itself
    # may be just under. Made a second older (not waited for: no sleep):
    outage.since -= 1.0
    with pytest.raises(grpc.aio.AioRpcError):
        await call("second")
    assert calls.count("second") == 1
    answer[0] = None
    assert await call("third") == "ok" and outage.since is None
    answer[0] = grpc.StatusCode.UNAVAILABLE
    with pytest.raises(grpc.aio.AioRpcError):
        await call("fourth")
    assert calls.count("fourth") > 1


@pytest.mark.parametrize(("code", "ends_outage"), [
    (grpc.StatusCode.NOT_FOUND, True),  # the planner answered
    (grpc.StatusCode.DEADLINE_EXCEEDED, False),  # no answer came in time: it goes on
    (grpc.StatusCode.CANCELLED, False),
])
async def test_only_an_answer_ends_an_outage(code: grpc.StatusCode, ends_outage: bool) -> None:
    outage = retry.Outage(since=time.monotonic() - 100)

    async def rpc(request: object, timeout: float) -> str:
        raise _error(code)

    with pytest.raises(grpc.aio.AioRpcError):
        await with_retry(rpc, None, 10.0, failing_for_s=30.0, outage=outage)
    assert (outage.since is None) is ends_outage
