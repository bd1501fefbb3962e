"""The open-loop load generator's pure parts: the send schedule and a rate's summary."""

from __future__ import annotations

import pytest

from bench.live_load import Outcome, send_schedule, summarize


@pytest.mark.parametrize(("rate", "duration", "start", "expected"), [
    (4.0, 1.0, 0.0, [0.0, 0.25, 0.5, 0.75]),
    (2.0, 2.0, 10.0, [10.0, 10.5, 11.0, 11.5]),
    (200.0, 0.02, 0.0, [0.0, 0.005, 0.01, 0.015]),
])
def test_sends_are_spaced_by_the_rate_from_the_start(rate: float, duration: float, start: float,
                                                     expected: list[float]) -> None:
    assert send_schedule(rate, duration, start) == pytest.approx(expected)


def test_the_schedule_does_not_depend_on_answers() -> None:
    """Open loop: the schedule is fixed up front (a late answer delays no send)."""
    assert len(send_schedule(500.0, 10.0)) == 5000


@pytest.mark.parametrize(("rate", "duration"), [(0.0, 1.0), (-1.0, 1.0), (10.0, 0.0)])
def test_a_rate_or_duration_that_is_not_positive_is_refused(rate: float, duration: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        send_schedule(rate, duration)


def _ok(latency: float, at: float, engine_ms: float = 0.0) -> Outcome:
    return Outcome("OK", latency, latency - engine_ms, at)


def _sent(at: float, latency: float) -> Outcome:
    """A call sent at `at` (s) answered `latency` ms later."""
    return Outcome("OK", latency, latency, at + latency / 1000)


@pytest.mark.parametrize(("outcomes", "sustained"), [
    ([_ok(2.0, 0.1 * i + 0.1) for i in range(10)], True),  # every call, on time
    ([_ok(2.0, 0.1 * i + 0.1) for i in range(9)], False),  # one call short of 95%
    ([_ok(2.0, 0.1 * i + 0.1) for i in range(9)] + [Outcome("UNAVAILABLE", 3.0, 3.0, 1.0)],
     False),  # an error
    ([_ok(900.0, 0.1 * i + 0.1) for i in range(10)], False),  # latency past the bound
    # a queue growing: the calls sent in the second half wait longer (a review found a rate
    # 1.03x capacity read sustained in 10 s); growth within SUSTAINED_TREND_MS is noise
    ([_sent(0.1 * i, 50.0 + 30.0 * (i >= 5)) for i in range(10)], False),
    ([_sent(0.1 * i, 50.0 + 20.0 * (i >= 5)) for i in range(10)], True),
    ([_sent(0.1 * i, 80.0 - 40.0 * (i >= 5)) for i in range(10)], True),  # shrinking: fine
])
def test_sustained_means_completed_without_errors_in_bounded_latency(
        outcomes: list[Outcome], sustained: bool) -> None:
    row = summarize(10.0, send_schedule(10.0, 1.0), outcomes)
    assert row["sustained"] is sustained


def test_a_rows_figures() -> None:
    outcomes = [_ok(10.0 + i, 0.1 * i + 0.1, engine_ms=1.0) for i in range(10)]
    outcomes.append(Outcome("RESOURCE_EXHAUSTED", 1.0, 1.0, 0.5))
    row = summarize(10.0, send_schedule(10.0, 1.1), outcomes)
    assert row["sent"] == 11 and row["completed"] == 10
    assert row["completed_per_s"] == 9.1  # 10 answers over the 1.1 s of sends
    assert row["errors"] == {"RESOURCE_EXHAUSTED": 1}
    assert row["overhead_ms"]["p50"] == pytest.approx(13.5)  # latency minus engine time
    assert row["latency_ms"]["p50"] == pytest.approx(14.5)  # whatever the engine reports
    assert row["latency_trend_ms"] == pytest.approx(5.0)  # 17 (sent in the 2nd half) - 12
