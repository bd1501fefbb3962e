"""Admission to prefill in the sim engine as SGLang 0.5's PrefillAdder does it (sim engine
review 2026-12-06, read against sglang/srt/managers/schedule_policy.py and scheduler.py):
running requests' outputs to come are promised (times the new-token ratio), a pass admits
within its chunk budget, priority preemption only when every slot is taken, and no request
asks more output than the pool can ever hold. SIMULATED."""

from __future__ import annotations

import pytest

from workers.sim.admission import (
    INIT_NEW_TOKEN_RATIO,
    MIN_NEW_TOKEN_RATIO,
    NEW_TOKEN_RATIO_DECAY,
)
from workers.sim.cost_model import CostModel, load_profile
from workers.sim.scheduler import EngineParams, Req, ReqState, SimEngineCore
from workers.sim.text import Decoder, FixedLengthDecoder

PROFILE = load_profile("h100-llama3.1-8b")


def _core(**params: object) -> SimEngineCore:
    return SimEngineCore(CostModel(PROFILE), EngineParams(**params))  # type: ignore[arg-type]


def _req(rid: str, first: int, prompt: int, out: int, asked: int | None = None,
         priority: int = 0) -> Req:
    return Req(rid, list(range(first, first + prompt)),
               FixedLengthDecoder(out, 50_000 + first, asked), priority=priority)


def test_a_pass_promises_each_admitted_requests_output_and_stops_when_it_would_not_fit() -> None:
    """20,000 tokens; 16 requests of 500 prompt tokens asking 2,000: each admitted takes its
    prompt (501 with the salt) and promises its 2,000, and the next needs 501 + 2,000 + a
    page below what is left: 7 start (the sim admitted all 16, then retracted 19 times)."""
    core = _core(max_total_tokens=20_000, max_running_requests=64)
    for i in range(16):
        core.submit(_req(f"r{i}", 1000 * i, 500, 2000, 2000), 0.0)
    core.next_event_time()  # the first pass
    assert len(core.prefilling) == 7 and len(core.waiting) == 9


def _running(ignore_eos: bool) -> tuple[SimEngineCore, Req]:
    """An engine with `a` running, and a prefill pass due at its next schedule (a pool
    small enough that what b may ask stays below the 4,096 clip)."""
    core = _core(max_total_tokens=7000, max_running_requests=64)
    a = _req("a", 0, 100, 4000, None if ignore_eos else 4000)
    core.submit(a, 0.0)
    core.step(core.next_event_time())  # a's prefill; its first decode step is in flight
    assert a.state is ReqState.RUNNING
    return core, a


@pytest.mark.parametrize(("ignore_eos", "promised", "over", "admitted"), [
    (True, 1.0, -5, True),  # all its max_new_tokens promised: just below fits
    (True, 1.0, 20, False),  # just above does not
    (False, INIT_NEW_TOKEN_RATIO, -5, True),  # a fresh engine's ratio of it
    (False, INIT_NEW_TOKEN_RATIO, 20, False),
])
def test_a_running_requests_output_to_come_is_promised_by_the_ratio(
        ignore_eos: bool, promised: float, over: int, admitted: bool) -> None:
    core, a = _running(ignore_eos)
    # as of the pass after a's decode step in flight: one more token of a's, one fewer left
    left = a.decoder.reserve_bound() - 1
    room = core.cache.available - 1 + core.cache.evictable - promised * left
    asks = int(room) - 103 + over  # b's prompt (100), its salt, a page: strictly below
    b = _req("b", 5000, 100, asks, asks)
    core.submit(b, core.t)
    core.step(core.next_event_time())  # a's step ends; the next pass looks at b
    assert (b.state is ReqState.PREFILL) is admitted


def test_the_ratio_falls_with_decode_steps_and_starts_again_when_idle() -> None:
    core = _core(max_total_tokens=100_000)
    core.submit(_req("a", 0, 100, 300, 300), 0.0)
    while (t := core.next_event_time()) is not None and core.t < 0.3:
        core.step(t)
    steps = core.iterations - 1  # the prefill aside
    expected = max(MIN_NEW_TOKEN_RATIO, INIT_NEW_TOKEN_RATIO - steps * NEW_TOKEN_RATIO_DECAY)
    assert core.new_token_ratio == pytest.approx(expected)
    while (t := core.next_event_time()) is not None:
        core.step(t)
    core.submit(_req("b", 500, 100, 3, 3), core.t + 1.0)  # an idle engine: afresh
    assert core.new_token_ratio == INIT_NEW_TOKEN_RATIO


def test_a_pass_admits_within_its_chunk_budget_and_a_later_high_priority_request_goes_next(
        ) -> None:
    """40 prompts of 2,000 tokens, then one of priority 100 a millisecond later: the first
    pass admits four whole and a fifth cut to what its 8,192-token budget leaves; the next
    pass continues that one and admits the high-priority request (the sim admitted all 40
    at once, and prefilled it after 9 iterations)."""
    core = _core(max_total_tokens=1_000_000, max_running_requests=256,
                 chunked_prefill_size=8192)
    for i in range(40):
        core.submit(_req(f"low{i}", 10_000 * i, 2000, 10, 10), 0.0)
    core.next_event_time()
    assert len(core.prefilling) == 5 and len(core.waiting) == 35
    high = _req("high", 900_000, 2000, 10, 10, priority=100)
    core.submit(high, 0.001)
    core.step(core.next_event_time())  # the first prefill iteration, then the second pass
    assert [r.rid for r in core.prefilling[:2]] == ["low4", "high"]


def test_priority_preempts_only_when_every_slot_is_taken() -> None:
    """KV short with slots free: the high-priority request waits (the sim retracted the
    low one); every slot taken: it preempts."""
    for slots, preempted in ((8, False), (1, True)):
        core = _core(max_total_tokens=3000, max_running_requests=slots, enable_priority=True,
                     preemption_threshold=10)
        low = _req("low", 0, 100, 2500)  # ignore_eos: promises all 2,500
        core.submit(low, 0.0)
        core.step(core.next_event_time())
        high = _req("high", 5000, 100, 1000, priority=100)  # promises 1,000: no room
        core.submit(high, core.t)
        core.step(core.next_event_time())  # low's decode step, then a pass
        assert (low.state is ReqState.WAITING) is preempted
        assert (high.state is ReqState.PREFILL) is preempted


def test_no_request_asks_more_output_than_the_pool_can_ever_hold() -> None:
    """A pool of 4,096 tokens, a prompt of 3,000 asking 2,000: SGLang cuts max_new_tokens
    to what fits (max_new_tokens_for_memory); the sim wrote 2,000 past the pool."""
    core = _core(max_total_tokens=4096)
    req = Req("a", list(range(3000)), Decoder(list(range(3000)), max_new_tokens=2000,
                                              ignore_eos=True))
    core.submit(req, 0.0)
    events = []
    while (t := core.next_event_time()) is not None:
        events += core.step(t)
    (done,) = [e for e in events if e.finished]
    assert done.completion_tokens == 4096 - 3000 - 3
    assert done.finish_reason == {"type": "length", "length": 4096 - 3000 - 3}
    assert core.cache.size + core.cache.reserved <= 4096
