"""Routing policies: affinity's home and parked calls, cache-aware routing, the KV index."""

from __future__ import annotations

import pytest

from planner.core.model import CallRecord, Program, WorkerState
from planner.core.routing import Affinity, CacheAware
from tests.planner.test_policies import core_with


def test_affinity_keeps_a_program_on_its_worker_and_parks_calls_while_it_is_full() -> None:
    core, clock = core_with("fcfs+affinity", workers=2, budget=1, max_home_wait_s=2.0)
    core.register_program("p", "t")
    core.submit("p", "t", "c0")
    (g0,) = core.dispatch()
    home, other = g0.worker_id, ("w1" if g0.worker_id == "w0" else "w0")
    core.complete("p", "c0", service_s=1)
    core.register_program("q", "t")
    core.program("q", "t").last_worker = home
    core.submit("q", "t", "x")  # no parents: follows q's last worker while it is not loaded
    assert [g.worker_id for g in core.dispatch()] == [home]
    # p's next call extends c0's prompt: its home is full, so it waits there although
    # the other worker is idle
    core.submit("p", "t", "c1", parents=["c0"])
    assert core.dispatch() == [] and core.queued == 1
    core.complete("q", "x", service_s=1)
    assert [(g.call_id, g.worker_id) for g in core.dispatch()] == [("c1", home)]
    core.complete("p", "c1", service_s=1)
    # full again: c2 waits up to max_home_wait_s, then runs wherever there is room
    core.submit("q", "t", "y")
    assert [g.worker_id for g in core.dispatch()] == [home]
    core.submit("p", "t", "c2", parents=["c1"])
    assert core.dispatch() == []
    clock.advance(1.9)
    assert core.dispatch() == []
    clock.advance(0.1)
    (g2,) = core.dispatch()
    assert (g2.call_id, g2.worker_id, g2.queued_s) == ("c2", other, pytest.approx(2.0))


def test_cache_aware_routes_to_the_longest_prefix_unless_imbalanced() -> None:
    router = CacheAware(balance_abs=2, balance_rel=1.5, cache_threshold=0.3)
    core, _ = core_with("fcfs+least_load", workers=2, budget=10)
    core._routing = router  # the same object the test inspects
    core.register_program("p", "t")
    shared = [11, 12, 13, 14]
    core.submit("p", "t", "a", prefix_hashes=shared)
    (ga,) = core.dispatch()
    core.complete("p", "a")
    core.submit("p", "t", "b", prefix_hashes=[*shared, 99])
    (gb,) = core.dispatch()
    assert gb.worker_id == ga.worker_id and router.matched_blocks(ga.worker_id, shared) == 4
    core.complete("p", "b")
    for i in range(4):  # pile load on the cached worker: imbalance wins over locality
        core.register_program(f"o{i}", "t")
        core.program(f"o{i}", "t").last_worker = ga.worker_id
    w = next(w for w in core.workers if w.worker_id == ga.worker_id)
    w.inflight = 5
    core.submit("p", "t", "c", prefix_hashes=shared)
    (gc,) = core.dispatch()
    assert gc.worker_id != ga.worker_id


@pytest.mark.parametrize(("policy", "kv_matches", "expected"), [
    # The KV-reference index says w2 holds 8 of the 10 blocks: both policies go there.
    ("fcfs+cache_aware", {"w0": 0, "w1": 2, "w2": 8}, "w2"),
    ("fcfs+affinity", {"w0": 0, "w1": 2, "w2": 8}, "w2"),
    # Below the 30% threshold: least loaded (lowest id on a tie).
    ("fcfs+cache_aware", {"w0": 0, "w1": 2, "w2": 2}, "w0"),
    ("fcfs+affinity", {"w0": 0, "w1": 2, "w2": 2}, "w0"),
    # The index did not answer (None): cache_aware uses its own estimate (empty here).
    ("fcfs+cache_aware", None, "w0"),
    ("fcfs+affinity", None, "w0"),
])
def test_routing_follows_the_kv_reference_index(policy: str, kv_matches: dict | None,
                                                expected: str) -> None:
    core, _ = core_with(policy, workers=3, budget=4)
    core.register_program("p", "t")
    core.submit("p", "t", "c", prefix_hashes=list(range(10)), kv_matches=kv_matches)
    (grant,) = core.dispatch()
    assert grant.worker_id == expected


@pytest.mark.parametrize(("second_matches", "expected"), [
    # The index answers for w1 and w2 only (the planner's copy of w0's not loaded yet): for
    # w0, cache_aware uses its own estimate, which routed the first call's prompt there.
    ({"w1": 0, "w2": 0}, "w0"),
    # The index knows all three and says nobody holds it: the least loaded (w1).
    ({"w0": 0, "w1": 0, "w2": 0}, "w1"),
])
def test_a_worker_the_index_leaves_out_falls_back_on_the_estimate(
        second_matches: dict[str, int], expected: str) -> None:
    core, _ = core_with("fcfs+cache_aware", workers=3, budget=4)
    core.register_program("p", "t")
    core.submit("p", "t", "c0", prefix_hashes=list(range(10)), kv_matches=None)
    (g0,) = core.dispatch()
    assert g0.worker_id == "w0"
    core.submit("p", "t", "c1", prefix_hashes=list(range(10)), kv_matches=second_matches)
    (g1,) = core.dispatch()
    assert g1.worker_id == expected


@pytest.mark.parametrize(("home_holds", "other_holds", "stays"), [
    (10, 10, True), (2, 10, True),  # home holds some of the prompt: it stays the home
    (0, 0, True),  # nobody holds any: home (the index may lag)
    (None, 10, True),  # the index knows nothing of home: home
    # the index says home holds none of it (its engine flushed, restarted or evicted it)
    # and another holds some: that one is the home (routing review 2026-12-06: the call
    # waited for, or went to, an engine holding nothing while another held 8 of 8 blocks)
    (0, 10, False), (0, 1, False),
])
def test_affinity_leaves_a_home_the_index_says_holds_none_of_the_prompt(
        home_holds: int | None, other_holds: int, stays: bool) -> None:
    core, _ = core_with("fcfs+affinity", workers=3, budget=1, max_home_wait_s=5.0)
    core.register_program("p", "t")
    core.submit("p", "t", "c0")
    (g0,) = core.dispatch()
    core.complete("p", "c0", service_s=1)
    home = g0.worker_id
    other = "w2" if home != "w2" else "w1"
    matches = {other: other_holds}
    if home_holds is not None:
        matches[home] = home_holds
    core.submit("p", "t", "c1", parents=["c0"], prefix_hashes=list(range(10)),
                kv_matches=matches)
    (g1,) = core.dispatch()
    assert g1.worker_id == (home if stays else other)


def test_affinity_prefers_the_programs_own_worker_over_the_index() -> None:
    core, _ = core_with("fcfs+affinity", workers=3, budget=4)
    core.register_program("p", "t")
    core.submit("p", "t", "c0")
    (g0,) = core.dispatch()
    core.complete("p", "c0", service_s=1)
    other = "w2" if g0.worker_id != "w2" else "w1"
    core.submit("p", "t", "c1", parents=["c0"], prefix_hashes=list(range(10)),
                kv_matches={other: 10})
    (g1,) = core.dispatch()
    assert g1.worker_id == g0.worker_id


@pytest.mark.parametrize(("home_load", "least_load", "stays"), [
    (4, 0, True),  # within max_extra (4) of the least loaded
    (5, 0, False),  # beyond it, and the least loaded is idle
    (24, 16, True),  # beyond max_extra but within 1.5x: large budgets keep their locality
    (25, 16, False),  # beyond both
    (60, 40, True),
    (61, 40, False),
])
def test_affinity_leaves_the_last_worker_only_when_it_is_loaded_beyond_both_bounds(
        home_load: int, least_load: int, stays: bool) -> None:
    """A call without parents (no context of its own) balances load."""
    home = WorkerState("w0", "a0", 128, 0.0, inflight=home_load)
    least = WorkerState("w1", "a1", 128, 0.0, inflight=least_load)
    program = Program("p", "t", 0.0, last_worker="w0")
    call = CallRecord("p", "c", "t", "", (), 100, 16, 0.0)
    chosen = Affinity().choose(call, program, [home, least], [home, least])
    assert (chosen is home) is stays


@pytest.mark.parametrize(("home_load", "least_load"), [(0, 0), (5, 0), (127, 0)])
def test_a_call_with_parents_stays_home_whenever_home_has_room(home_load: int,
                                                                least_load: int) -> None:
    home = WorkerState("w0", "a0", 128, 0.0, inflight=home_load)
    least = WorkerState("w1", "a1", 128, 0.0, inflight=least_load)
    parent = CallRecord("p", "a", "t", "", (), 100, 16, 0.0, worker_id="w0", finished_at=1.0)
    program = Program("p", "t", 0.0, calls={"a": parent}, last_worker="w1")
    call = CallRecord("p", "b", "t", "", ("a",), 200, 16, 0.0)
    assert Affinity().home(call, program) == "w0"
    assert Affinity().choose(call, program, [home, least], [home, least]) is home


def test_cache_aware_index_stays_a_leading_run_when_its_cap_evicts() -> None:
    router = CacheAware(max_blocks_per_worker=6)
    first, second = [1, 2, 3, 4, 5], [11, 12, 13]
    router._record("w", first)
    router._record("w", second)  # 8 blocks for a cap of 6: two go, the oldest tails first
    assert router.matched_blocks("w", second) == 3
    assert router.matched_blocks("w", first) == 3  # blocks 1-3 kept: a leading run


@pytest.mark.parametrize("loads,held,expected", [
    ({"a": 0, "b": 0, "c": 0}, {"a": 10}, "a"),          # the holder, idle: it
    ({"a": 4, "b": 0, "c": 0}, {"a": 10}, "a"),          # within max_extra (4): still it
    ({"a": 5, "b": 0, "c": 0}, {"a": 10}, "b"),          # beyond: the least loaded
    ({"a": 9, "b": 6, "c": 2}, {"a": 10, "b": 10}, "b"),  # the least loaded holder
    ({"a": 1, "b": 0, "c": 0}, {"a": 2}, "b"),           # 2 of 10 blocks: no holder, least
])
def test_affinity_sends_a_first_call_to_a_holder_of_its_prefix_only_within_balance(
        loads: dict[str, int], held: dict[str, int], expected: str) -> None:
    workers = [WorkerState(w, w, 64, last_seen=0.0, inflight=n) for w, n in loads.items()]
    call = CallRecord(program_id="p", call_id="0", tenant="t", thread_id="main", parents=(),
                      prompt_tokens=160, max_new_tokens=8, arrival=0.0,
                      prefix_hashes=tuple(range(10)), kv_matches=held)
    program = Program(program_id="p", tenant="t", created_at=0.0)
    assert Affinity().choose(call, program, workers, workers).worker_id == expected


@pytest.mark.parametrize("with_unhealthy_worker", [False, True])
def test_cache_aware_balance_counts_only_the_healthy_workers(
        with_unhealthy_worker: bool) -> None:
    """w1 and w2 run 68 and 62 calls (balanced: max - min <= 64) and w1 holds the call's
    whole prompt: the call goes to w1. An unhealthy third worker (nothing starts there,
    0 calls) must not make them look imbalanced and send it to w2 to prefill its 100
    blocks again (a review found it did)."""
    core, clock = core_with("fcfs+cache_aware", workers=0, max_home_wait_s=0,
                            program_admission=False)
    for w in ("w1", "w2"):
        core.upsert_worker(w, w, 200)
    if with_unhealthy_worker:
        core.upsert_worker("w9", "w9", 200, healthy=False)
    core.register_program("p", "t")
    for i in range(136):
        core.submit("p", "t", f"f{i}")
    core.dispatch()  # least loaded: 68 / 68
    on_w2 = [c for c in core.program("p", "t").calls.values() if c.worker_id == "w2"][:6]
    clock.advance(1.0)
    for c in on_w2:
        core.complete("p", c.call_id, service_s=1.0)
    assert {w.worker_id: w.inflight for w in core.workers if w.healthy} == {"w1": 68, "w2": 62}
    core.submit("p", "t", "x", kv_matches={"w1": 100, "w2": 0}, prefix_hashes=list(range(100)))
    assert [g.worker_id for g in core.dispatch()] == ["w1"]
