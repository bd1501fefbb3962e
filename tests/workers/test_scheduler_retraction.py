"""Retraction in the sim engine as SGLang 0.5 does it (sim engine review 2026-12-06, read
against sglang/srt/managers/schedule_batch.py `retract_decode`, `release_req` and
scheduler.py `_add_request_to_queue`): when KV runs out during decode, the request with the
fewest output tokens (then the longest prompt) goes back, whatever its priority (the
default `--retraction-policy length`); its output's KV is freed, not cached, and recomputed
when it is admitted again; it waits behind every request already waiting. SIMULATED."""

from __future__ import annotations

import pytest

from workers.sim.admission import MIN_NEW_TOKEN_RATIO
from workers.sim.cost_model import CostModel, load_profile
from workers.sim.scheduler import EngineEvent, EngineParams, Req, SimEngineCore
from workers.sim.text import FixedLengthDecoder

PROFILE = load_profile("h100-llama3.1-8b")


def _core(**params: object) -> SimEngineCore:
    return SimEngineCore(CostModel(PROFILE), EngineParams(**params))  # type: ignore[arg-type]


def _req(rid: str, first: int, prompt: int, out: int, priority: int = 0) -> Req:
    return Req(rid, list(range(first, first + prompt)), FixedLengthDecoder(out, 50_000 + first),
               priority=priority)


def _run(core: SimEngineCore, until: float = 1e9) -> list[EngineEvent]:
    events = []
    while (t := core.next_event_time()) is not None and t <= until:
        events += core.step(t)
    return events


def _retracted(core: SimEngineCore) -> list[str]:
    """The rids retracted from now on, in order."""
    out: list[str] = []
    retract = core._retract

    def traced(req: Req, now: float) -> None:
        out.append(req.rid)
        retract(req, now)

    core._retract = traced  # type: ignore[method-assign]
    return out


def test_the_request_with_the_fewest_output_tokens_goes_back_whatever_its_priority() -> None:
    """Low runs until the new-token ratio is at its floor (600 decode steps): high, asking
    1,500 tokens, is admitted beside it on that estimate; both then write more than it
    promised and KV runs out. High, with fewer output tokens, goes back."""
    core = _core(max_total_tokens=3000, max_running_requests=8, enable_priority=True,
                 preemption_threshold=10)
    low = Req("low", list(range(1000, 1100)), FixedLengthDecoder(2500, 51_000, 2500))
    core.submit(low, 0.0)
    _run(core, until=6.0)
    assert core.new_token_ratio == pytest.approx(MIN_NEW_TOKEN_RATIO)
    high = Req("high", list(range(5000, 5100)), FixedLengthDecoder(1500, 55_000, 1500),
               priority=5)
    core.submit(high, core.t)
    retracted = _retracted(core)
    done = {e.rid for e in _run(core) if e.finished}
    assert retracted[0] == "high"  # fewer output tokens than low, though of higher priority
    assert done == {"low", "high"}


def test_a_retracted_requests_output_is_recomputed_not_served_from_the_cache() -> None:
    core = _core(max_total_tokens=100_000, max_running_requests=1, enable_priority=True,
                 preemption_threshold=10)
    low = _req("low", 1000, 100, 3000)
    core.submit(low, 0.0)
    _run(core, until=2.0)
    produced = low.decoder.completion_tokens
    assert produced > 10
    core.submit(_req("high", 5000, 50, 10, priority=100), core.t)  # preempts low
    admitted: list[tuple[int, int]] = []
    admit = core._admit

    def traced(req: Req, now: float, offset: float) -> int | None:
        took = admit(req, now, offset)
        if took is not None and req.rid == "low":
            admitted.append((len(req.key), req.done_tokens))
        return took

    core._admit = traced  # type: ignore[method-assign]
    _run(core)
    (key, cached), = admitted
    assert key - 101 >= produced  # the salt token, the prompt, its output so far
    assert cached == 1 + 100  # the prompt's KV was kept (cached); the output's was not


def test_a_retracted_request_waits_behind_those_already_waiting() -> None:
    core = _core(max_total_tokens=100_000, max_running_requests=1, enable_priority=False)
    a = _req("A", 1000, 100, 1000)
    core.submit(a, 0.0)
    _run(core, until=0.05)
    for i, name in enumerate("CD"):
        core.submit(_req(name, 3000 + 200 * i, 100, 20), 0.05)
    core._retract(a, 0.06)
    assert [r.rid for r in core.waiting] == ["C", "D", "A"]
    assert {e.rid for e in _run(core) if e.finished} == {"A", "C", "D"}
