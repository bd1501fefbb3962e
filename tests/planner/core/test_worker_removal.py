"""What a worker leaves behind when it is removed (DeregisterWorker, or expire() past
worker_ttl_s), and what the queue keeps of calls that left it: nothing for good (review F6:
calls running on a removed worker with no report to come stayed RUNNING for good, their
programs never expired; F10: CacheAware's index kept every worker id ever seen; F11: the
records of calls cancelled while queued, and of calls parked on a removed worker, stayed in
the queue's deques). Pure, clock-injected."""

from __future__ import annotations

import pytest

from ostinato.clock import ManualClock
from planner.core import CallState, PlannerCore
from planner.core.model import CallRecord, Program
from planner.core.queue import GLOBAL, MultiLevelQueue
from planner.core.routing import CacheAware
from planner.core.selection import parse_policy


def _core(policy: str, workers: int = 2, **kw: float) -> tuple[PlannerCore, ManualClock]:
    clock = ManualClock()
    core = PlannerCore(clock, *parse_policy(policy), program_admission=False,
                       worker_ttl_s=10.0, **kw)  # type: ignore[arg-type]
    for i in range(workers):
        core.upsert_worker(f"w{i}", f"addr{i}", 1)
    return core, clock


def _entries(queue: MultiLevelQueue, lane: str = GLOBAL) -> int:
    return sum(len(level) for q in queue._lanes.get(lane, {}).values() for level in q.levels)


@pytest.mark.parametrize("how", ["deregistered", "expired"])
def test_cache_aware_forgets_a_removed_worker(how: str) -> None:
    core, clock = _core("fcfs+cache_aware")
    routing = core._routing
    assert isinstance(routing, CacheAware)
    core.register_program("p", "t")
    core.submit("p", "t", "a", prefix_hashes=range(100))
    core.submit("p", "t", "b", prefix_hashes=range(200, 300))
    core.dispatch()
    assert sorted(routing._index) == ["w0", "w1"]
    if how == "deregistered":
        core.remove_worker("w0")
    else:  # w1 heartbeats, w0 does not
        clock.advance(11.0)
        core.upsert_worker("w1", "addr1", 1)
        core.expire()
    assert sorted(routing._index) == ["w1"]
    core.upsert_worker("w0", "addr0", 1)  # back under its id, its engine empty
    assert routing.matched_blocks("w0", range(100)) == 0


@pytest.mark.parametrize("policy", ["fcfs+round_robin", "plas+least_load", "srpt+affinity"])
def test_removing_a_worker_drops_a_routing_policys_state_of_it(policy: str) -> None:
    core, _ = _core(policy)
    core.remove_worker("w0")  # every policy has `forget`, a no-op where nothing is kept
    assert [w.worker_id for w in core.workers] == ["w1"]


def test_calls_cancelled_in_the_queue_leave_no_entries() -> None:
    core, _ = _core("fcfs+round_robin", workers=1)
    core.register_program("busy", "u")
    core.submit("busy", "u", "x")
    core.dispatch()
    core.register_program("p", "t")
    for i in range(100):
        core.submit("p", "t", f"c{i}")
    assert _entries(core._queue) == 100
    core.end_program("p", "t")  # cancels them: nothing pops t's lane again
    assert len(core._queue) == 0 and _entries(core._queue) == 0


def test_the_lane_of_a_removed_worker_goes_with_it() -> None:
    core, clock = _core("fcfs+affinity", max_home_wait_s=100.0)
    core.register_program("p", "t")
    core.submit("p", "t", "a")
    core.dispatch()
    core.complete("p", "a")  # a ran on w0: its children's home
    core.register_program("busy", "u")
    core.submit("busy", "u", "x")
    core.submit("busy", "u", "y")
    core.dispatch()  # both workers busy
    for i in range(10):
        core.submit("p", "t", f"k{i}", parents=["a"])
    core.dispatch()
    assert core.parked_counts() == {("w0", "t"): 10}
    core.remove_worker("w0")
    assert "w0" not in core._queue._lanes  # its calls went to the global lane
    assert core._queue.size_of("t", GLOBAL) == 10 and _entries(core._queue) == 10
    core.complete("busy", "y")
    clock.advance(1.0)
    assert [g.call_id for g in core.dispatch()] == ["k0"]


def test_a_lane_whose_calls_all_left_drops_its_entries() -> None:
    queue = MultiLevelQueue((1.0, 4.0))
    calls = [CallRecord("p", f"c{i}", "t", "main", (), 10, 4, float(i), score=s)
             for i, s in enumerate((0.5, 2.0, 8.0, 0.5))]
    for call in calls:
        queue.push(call)
    for call in calls[:-1]:
        queue.discard(call)
        assert _entries(queue) == 4  # one still waits: the others drop lazily
    queue.discard(calls[-1])
    assert _entries(queue) == 0 and len(queue) == 0
    queue.push(calls[0])
    assert queue.pop(10.0) is calls[0]


def _running_on_w0() -> tuple[PlannerCore, ManualClock, CallRecord]:
    core, clock = _core("fcfs+round_robin", program_idle_ttl_s=100.0)
    core.register_program("p", "t")
    call = core.submit("p", "t", "c")
    assert [g.worker_id for g in core.dispatch()] == ["w0"]
    return core, clock, call


def _beat(core: PlannerCore, clock: ManualClock, seconds: float, *workers: str) -> None:
    """`seconds` pass, `workers` heartbeating each second, expire() each second."""
    for _ in range(int(seconds)):
        clock.advance(1.0)
        for w in workers:
            core.upsert_worker(w, w, 1)
        core.expire()


@pytest.mark.parametrize("how", ["deregistered", "expired"])
def test_a_call_left_running_on_a_removed_worker_ends_failed(how: str) -> None:
    core, clock, call = _running_on_w0()
    if how == "deregistered":
        core.remove_worker("w0")
    else:
        _beat(core, clock, 11, "w1")  # w0 silent past worker_ttl_s: removed
    assert core.worker("w0") is None and call.state is CallState.RUNNING  # its report may come
    _beat(core, clock, 10, "w1")
    assert call.state is CallState.RUNNING  # gone worker_ttl_s (10 s), not past it
    _beat(core, clock, 1, "w1")
    assert call.state is CallState.FAILED
    assert core._shares.running_of("t") == 0 and core._gone == {}
    again = core.submit("p", "t", "c", retry_of_attempt=1)  # its caller runs it again
    assert again.attempt == 2
    assert [g.worker_id for g in core.dispatch()] == ["w1"]
    core.complete("p", "c")
    _beat(core, clock, 101, "w1")
    assert core.programs_open == 0  # idle: it expires


@pytest.mark.parametrize("back", [False, True])
def test_a_report_or_the_worker_back_in_time_keeps_the_call(back: bool) -> None:
    core, clock, call = _running_on_w0()
    core.remove_worker("w0")
    _beat(core, clock, 5, "w1")
    if back:  # registered again: its calls count there, reconcile's to judge
        core.upsert_worker("w0", "addr0", 1)
        _beat(core, clock, 30, "w0", "w1")
        worker = core.worker("w0")
        assert call.state is CallState.RUNNING and worker is not None and worker.inflight == 1
    else:
        core.complete("p", "c", service_s=1.0)
        _beat(core, clock, 30, "w1")
        assert call.state is CallState.DONE
    assert core._gone == {}


@pytest.mark.parametrize("registers", [False, True])
def test_a_restored_running_call_ends_failed_unless_its_worker_registers(
        registers: bool) -> None:
    clock = ManualClock(start=50.0)
    core = PlannerCore(clock, *parse_policy("fcfs+round_robin"), worker_ttl_s=10.0)
    program = Program("p", "t", created_at=40.0, last_active=45.0)
    call = CallRecord("p", "c", "t", "main", (), 10, 4, arrival=41.0, worker_id="w9",
                      state=CallState.RUNNING, dispatched_at=42.0)
    program.calls["c"] = call
    core.restore(program)  # before any worker registered again
    _beat(core, clock, 11, *(["w9"] if registers else []))
    assert call.state is (CallState.RUNNING if registers else CallState.FAILED)
