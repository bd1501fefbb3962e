"""The sim engine's fast paths give what stepping one token at a time gives.

Without stream events, FixedLengthDecoder requests follow the engine's decode-step counter
(a decode iteration costs O(1) plus its finishers) and fast_forward runs decode stretches up
to the next finish, also while the head of the queue cannot be admitted. These tests run
the same random workloads (shared prefixes, priorities, a small KV pool that evicts and
retracts, aborts) both ways and compare every request's outcome and the engine's counters.
"""

from __future__ import annotations

import random

import pytest

from cache.block_hash import block_hashes
from workers.sim.cost_model import CostModel
from workers.sim.radix import BlockRemoved, BlockStored
from workers.sim.scheduler import EngineEvent, EngineParams, Req, SimEngineCore
from workers.sim.text import FixedLengthDecoder

from .test_cost_model import TOY

Arrival = tuple[float, str, list[int], int, int, str, bool]  # t, rid, prompt, out, prio, salt, abort


def workload(seed: int) -> tuple[list[Arrival], dict[str, object]]:
    rng = random.Random(seed)
    shared = [rng.randint(0, 50) for _ in range(rng.randint(0, 300))]
    capacity = rng.choice([600, 1500, 4000, 100_000])
    arrivals: list[Arrival] = []
    t = 0.0
    for i in range(rng.randint(5, 40)):
        t += rng.expovariate(rng.choice([5.0, 50.0, 500.0]))
        prompt = (shared[:rng.randint(0, len(shared))] if rng.random() < 0.7 else []) + \
            [rng.randint(0, 50) for _ in range(rng.randint(1, 400))]
        if len(prompt) + 2 < capacity:
            arrivals.append((t, f"r{i}", prompt, rng.randint(1, 120), rng.choice([0, 0, 5, 20]),
                             rng.choice(["", "a"]), rng.random() < 0.05))
    params = {"max_total_tokens": capacity, "max_running_requests": rng.choice([2, 4, 8, 256]),
              "schedule_policy": rng.choice(["fcfs", "fcfs", "lpm"]),
              "chunked_prefill_size": rng.choice([64, 256, 8192]),
              "enable_priority": rng.random() < 0.8, "block_size": 4}
    return arrivals, params


def run(arrivals: list[Arrival], params: dict[str, object], *, fast: bool, hashes: bool = False,
        progress: int = 0) -> tuple[dict[str, EngineEvent], SimEngineCore, list[tuple[float, str, int]]]:
    """Drives the core as the cluster simulator does; `progress`: checks take_progress
    against a scan of the running requests after every step, returns what it listed."""
    core = SimEngineCore(CostModel(TOY), EngineParams(
        **params, fast_forward=fast, stream_events=not fast))  # type: ignore[arg-type]
    pending = []
    for t, rid, prompt, out, prio, salt, abort in arrivals:
        known = block_hashes(prompt, 4, salt) if hashes else ()
        req = Req(rid, list(prompt), FixedLengthDecoder(out, 10_000 * (1 + int(rid[1:]))),
                  priority=prio, salt=salt, block_hashes=known)
        pending.append((t, 0, req))
        if abort:
            pending.append((t + 0.0123, 1, req))
    pending.sort(key=lambda p: (p[0], p[1]))
    done: dict[str, EngineEvent] = {}
    reported: dict[str, int] = {}
    listed: list[tuple[float, str, int]] = []
    while pending or core.next_event_time() is not None:
        nxt = core.next_event_time()
        if pending and (nxt is None or pending[0][0] < nxt):
            t, kind, req = pending.pop(0)
            if kind == 0:
                core.submit(req, t)
            elif (ev := core.abort(req.rid, t)) is not None:
                done[req.rid] = ev
            continue
        assert nxt is not None
        for e in core.step(nxt):
            if e.finished:
                done[e.rid] = e
                reported.pop(e.rid, None)
        if progress:
            scan = []
            for r in core.running:  # what a caller scanning every running request finds
                n = r.decoder.completion_tokens
                assert core.generated_tokens(r.rid) == n
                if n // progress > reported.get(r.rid, 0) // progress:
                    reported[r.rid] = n
                    scan.append((r.rid, n))
            assert core.take_progress(progress) == scan
            listed += [(nxt, rid, n) for rid, n in scan]
    return done, core, listed


def outcomes(done: dict[str, EngineEvent]) -> dict[str, tuple[object, ...]]:
    return {rid: (e.cached_tokens, e.completion_tokens, e.prompt_tokens, tuple(e.output_ids),
                  (e.finish_reason or {})["type"]) for rid, e in done.items()}


@pytest.mark.parametrize("seed", range(100))
def test_fast_paths_match_token_by_token_stepping(seed: int) -> None:
    arrivals, params = workload(seed)
    slow, slow_core, _ = run(arrivals, params, fast=False)
    fast, fast_core, _ = run(arrivals, params, fast=True)
    assert outcomes(fast) == outcomes(slow)
    for rid, e in slow.items():
        assert fast[rid].time == pytest.approx(e.time, rel=1e-9, abs=1e-12)
        first = e.first_token_at  # None: aborted before its first token
        assert fast[rid].first_token_at == (first if first is None
                                            else pytest.approx(first, rel=1e-9, abs=1e-12))
    assert fast_core.iterations == slow_core.iterations
    assert fast_core.busy_s == pytest.approx(slow_core.busy_s, rel=1e-9)
    assert (fast_core.cache.size, fast_core.cache.reserved) == \
        (slow_core.cache.size, slow_core.cache.reserved)


@pytest.mark.parametrize("seed", range(6))
def test_take_progress_lists_what_a_scan_of_running_requests_finds(seed: int) -> None:
    arrivals, params = workload(seed)
    for fast in (False, True):
        run(arrivals, params, fast=fast, progress=16)  # asserts after every step


def test_known_prompt_hashes_give_the_same_blocks_and_results() -> None:
    arrivals, params = workload(3)
    plain, core_a, _ = run(arrivals, params, fast=True)
    known, core_b, _ = run(arrivals, params, fast=True, hashes=True)
    assert outcomes(plain) == outcomes(known)
    assert core_a.cache.cached_blocks() == core_b.cache.cached_blocks()


def test_known_hashes_of_another_chain_are_refused() -> None:
    core = SimEngineCore(CostModel(TOY), EngineParams(max_total_tokens=10_000, block_size=4))
    prompt = list(range(40))
    core.submit(Req("a", prompt, FixedLengthDecoder(2, 1000), salt="s",
                    block_hashes=block_hashes(prompt, 4, "other salt")), 0.0)
    with pytest.raises(ValueError, match="known block hashes"):
        core.step(1.0)


def test_kv_events_of_a_stretch_describe_the_cache() -> None:
    arrivals, params = workload(11)
    core = SimEngineCore(CostModel(TOY), EngineParams(
        **params, fast_forward=True, stream_events=False))  # type: ignore[arg-type]
    held: set[int] = set()
    for t, rid, prompt, out, prio, salt, _ in arrivals:
        core.step(t)
        core.submit(Req(rid, list(prompt), FixedLengthDecoder(out, 10_000 * (1 + int(rid[1:]))),
                        priority=prio, salt=salt), t)
    while (nxt := core.next_event_time()) is not None:
        core.step(nxt)
        for e in core.cache.take_events():
            if isinstance(e, BlockStored):
                held |= set(e.block_hashes)
            elif isinstance(e, BlockRemoved):
                held -= set(e.block_hashes)
    assert held == core.cache.cached_blocks()


def test_generated_tokens_follows_a_stretch_and_forgets_finished_requests() -> None:
    core = SimEngineCore(CostModel(TOY), EngineParams(
        max_total_tokens=100_000, fast_forward=True, stream_events=False))
    core.submit(Req("a", [1, 2, 3], FixedLengthDecoder(50, 1000)), 0.0)
    core.submit(Req("b", [4, 5, 6], FixedLengthDecoder(10, 2000)), 0.0)
    assert core.generated_tokens("a") == 0
    core.step(core.next_event_time())  # type: ignore[arg-type]  # prefill: the first tokens
    assert core.generated_tokens("a") == core.generated_tokens("b") == 1
    events = core.step(core.next_event_time())  # type: ignore[arg-type]  # 9 steps: b ends
    assert [e.rid for e in events] == ["b"] and events[0].completion_tokens == 10
    assert tuple(events[0].output_ids) == tuple(range(2000, 2010))
    assert core.generated_tokens("a") == 10 and core.generated_tokens("b") is None
    assert core.iterations == 10
