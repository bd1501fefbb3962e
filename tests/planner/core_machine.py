"""A hypothesis state machine over the planner core (planner/core): random interleavings of
programs (registered, re-registered, closed, ended; deadlines, conversations, declared),
calls (with parents, on threads; retried, resent, started early, served from a cache,
cancelled), workers (joining, leaving, unhealthy, resized), dispatch, reports (stray and
late ones too), clock and expiry, tenant weights, and a planner restart that restores what
the store wrote; after every step the core's bookkeeping is checked (core_invariants.py),
and at the end every call must have run once workers are free. The session-70 review that
wrote it found three faults (docs/reviews/2026-12-07-s70/); test_core_stateful.py runs it.

Known and tolerated: a child whose parent's attempt failed may start before the parent's
retry is admitted (review B2: ordering only; a worker's FAILED report releases it).
"""

from __future__ import annotations

import contextlib
import json
from typing import Any, ClassVar

import hypothesis.strategies as st
from hypothesis import event
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from ostinato.clock import ManualClock
from planner.core import CallState, PlannerCore, PlannerError
from planner.core.model import CallChanged, ProgramEnded, ProgramRegistered
from planner.core.selection import parse_policy
from planner.records import call_json, program_fields, program_from_fields
from tests.planner.core_invariants import check_consistent, check_ended

PIDS = ["p0", "p1", "p2", "p3"]
CIDS = [f"c{i}" for i in range(8)]
WIDS = ["w0", "w1", "w2"]
TENANTS = ["a", "b"]


class CoreMachine(RuleBasedStateMachine):
    """Subclasses name the policy and the core's options (test_core_stateful.py)."""

    policy: ClassVar[str] = "fcfs+round_robin"
    options: ClassVar[dict[str, Any]] = {}

    def new_core(self) -> PlannerCore:
        return PlannerCore(self.clock, *parse_policy(self.policy), worker_ttl_s=10,
                           program_idle_ttl_s=100, declared_idle_ttl_s=50, orphan_ttl_s=30,
                           max_home_wait_s=2, **{"isolation_budget": 32, "unstarted_grant_s": 5,
                                                 **self.options})

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock(1000.0)
        self.core = self.new_core()
        self._wrap()
        self.granted: dict[tuple[str, str, int], int] = {}  # (pid, cid, attempt) -> times
        self.restored_running: set[tuple[str, str]] = set()
        self.log: list[str] = []
        self.ever_finished: set[str] = set()  # keys whose some record ended via _finish
        # Redis as planner/store.py writes it: pid -> [meta, {cid: json}]; calls hashes are
        # not cleared when a program ends (EXPIRE only) nor when its id is registered again
        self.redis: dict[str, list] = {}

    def _wrap(self) -> None:
        core = self.core
        orig = core._finish

        def finish(call, state, refused=None):
            self.ever_finished.add(call.key)
            assert not call.state.finished, \
                f"_finish on an already finished record {call.key} ({call.state})"
            return orig(call, state, refused) if refused is not None else orig(call, state)

        core._finish = finish  # type: ignore[method-assign]

    # ---------------------------------------------------------------- rules
    @rule(pid=st.sampled_from(PIDS), tenant=st.sampled_from(TENANTS),
          deadline=st.one_of(st.none(), st.floats(1, 50)), late=st.booleans(),
          conv=st.booleans(), declared=st.booleans(), max_open=st.integers(0, 3))
    def register(self, pid, tenant, deadline, late, conv, declared, max_open):
        with contextlib.suppress(PlannerError):
            self.core.register_program(pid, tenant, deadline_s=deadline, reject_when_late=late,
                                       conversation=conv, declared=declared, max_open=max_open)

    @rule(pid=st.sampled_from(PIDS), cid=st.sampled_from(CIDS),
          nparents=st.integers(0, 2), thread=st.sampled_from(["main", "t1"]),
          prompt=st.integers(0, 3000), mnt=st.integers(0, 200), data=st.data())
    def submit(self, pid, cid, nparents, thread, prompt, mnt, data):
        open_ = sorted(self.core._programs)
        if open_ and data.draw(st.integers(0, 9)) < 9:
            pid = data.draw(st.sampled_from(open_))
        program = self.core._programs.get(pid)
        tenant = program.tenant if program is not None else data.draw(st.sampled_from(TENANTS))
        parents = []
        if program is not None and nparents:
            existing = sorted(program.calls)
            if existing:
                parents = data.draw(st.lists(st.sampled_from(existing), max_size=nparents,
                                             unique=True))
        if program is not None and cid in program.calls:  # a client resends its own request
            parents = list(program.calls[cid].parents)
            thread = program.calls[cid].thread_id
        try:
            c = self.core.submit(pid, tenant, cid, thread_id=thread, parents=parents,
                                 prompt_tokens=prompt, max_new_tokens=mnt)
            event(f"submit ok {c.state.value}")
        except PlannerError as exc:
            event(f"submit {type(exc).__name__}")

    @rule(pid=st.sampled_from(PIDS), cid=st.sampled_from(CIDS),
          nparents=st.integers(0, 2), thread=st.sampled_from(["main", "t1"]),
          prompt=st.integers(0, 3000), mnt=st.integers(0, 200), data=st.data())
    def submit2(self, pid, cid, nparents, thread, prompt, mnt, data):
        self.submit(pid, cid, nparents, thread, prompt, mnt, data)

    @rule(pid=st.sampled_from(PIDS), tenant=st.sampled_from(TENANTS))
    def register2(self, pid, tenant):
        self.register(pid, tenant, None, False, False, False, 0)

    @rule()
    def dispatch2(self):
        self.dispatch()

    @rule(cid=st.sampled_from(CIDS), wid=st.sampled_from(WIDS), prio=st.integers(0, 120),
          cached=st.booleans(), data=st.data())
    def submit_early_or_cached(self, cid, wid, prio, cached, data):
        open_ = sorted(self.core._programs)
        if not open_:
            return
        pid = data.draw(st.sampled_from(open_))
        program = self.core._programs[pid]
        parents = list(program.calls[cid].parents) if cid in program.calls else []
        try:
            c = self.core.submit(pid, program.tenant, cid, parents=parents,
                                 served_from_cache=cached, resend=cached and cid in program.calls,
                                 started_on="" if cached else wid, started_priority=prio)
            event(f"submit {'cached' if cached else 'early'} {c.state.value}")
        except PlannerError as exc:
            event(f"submit early/cached {type(exc).__name__}")

    @rule(data=st.data())
    def early_worker_reports(self, data):
        early = sorted((c for c in self.core._calls.values() if c.started_on),
                       key=lambda c: c.key)
        if not early:
            return
        call = data.draw(st.sampled_from(early))
        with contextlib.suppress(PlannerError):
            self.core.complete(call.program_id, call.call_id, attempt=call.attempt,
                               worker_id=call.started_on, service_s=1.0, completion_tokens=4)

    @rule(data=st.data(), resend=st.booleans(), exclude=st.booleans())
    def retry(self, data, resend, exclude):
        """A caller admits a known call again: its attempt failed, or a resend."""
        calls = [c for p in self.core._programs.values() for c in p.calls.values()]
        if not calls:
            return
        call = data.draw(st.sampled_from(sorted(calls, key=lambda c: c.key)))
        with contextlib.suppress(PlannerError):
            self.core.submit(call.program_id, call.tenant, call.call_id,
                             thread_id=call.thread_id, parents=call.parents,
                             retry_of_attempt=0 if resend else call.attempt, resend=resend,
                             exclude_workers=[call.worker_id] if exclude and call.worker_id
                             else ())

    @rule(wid=st.sampled_from(WIDS), cap=st.integers(1, 4), healthy=st.booleans(),
          kv=st.sampled_from([0, 0, 4000, 100000]))
    def upsert_worker(self, wid, cap, healthy, kv):
        self.core.upsert_worker(wid, f"addr-{wid}", cap, healthy=healthy, kv_tokens=kv)

    @rule(wid=st.sampled_from(WIDS))
    def remove_worker(self, wid):
        self.core.remove_worker(wid)

    @rule()
    def dispatch(self):
        grants = self.core.dispatch()
        self._check_grants(grants)

    def _check_grants(self, grants):
        core = self.core
        seen = set()
        for g in grants:
            key = (g.program_id, g.call_id)
            assert key not in seen, f"granted twice in one dispatch: {key}"
            seen.add(key)
            program = core._programs.get(g.program_id)
            assert program is not None, f"grant for a program not open: {g}"
            assert not program.closed, f"grant for a closed program: {g}"
            call = program.calls[g.call_id]
            assert call.state is CallState.RUNNING and call.worker_id == g.worker_id, g
            assert core._calls.get(call.key) is call
            worker = core._workers.get(g.worker_id)
            assert worker is not None and worker.healthy, f"granted to a gone/unhealthy worker {g}"
            assert g.worker_id not in call.excluded or all(
                w in call.excluded for w, ww in core._workers.items() if ww.healthy), \
                f"granted on an excluded worker though another is healthy: {g}"
            event("grant")
            if call.attempt > 1:
                event("grant retry")
            if call.parents:
                event("grant with parents")
            gk = (g.program_id, g.call_id, g.attempt)
            self.granted[gk] = self.granted.get(gk, 0) + 1
            assert self.granted[gk] == 1, f"attempt granted twice: {gk}"
            if not program.conversation:
                for p in call.parents:
                    assert program.calls[p].state.finished or program.calls[p].attempt > 1 \
                        or f"{g.program_id}/{p}" in self.ever_finished, \
                        f"{call.key} started before its parent {p} ({program.calls[p].state})"

    @rule(data=st.data(), state=st.sampled_from([CallState.DONE, CallState.DONE,
                                                 CallState.FAILED, CallState.CANCELLED]),
          service=st.floats(0, 5), toks=st.integers(0, 500), by_attempt=st.booleans())
    def complete(self, data, state, service, toks, by_attempt):
        running = sorted((c for c in self.core._calls.values()
                          if c.state is CallState.RUNNING), key=lambda c: c.key)
        if not running:
            return
        call = data.draw(st.sampled_from(running))
        with contextlib.suppress(PlannerError):
            self.core.complete(call.program_id, call.call_id, state=state, service_s=service,
                               prompt_tokens=toks, completion_tokens=toks,
                               attempt=call.attempt if by_attempt else 0,
                               worker_id=call.worker_id)

    @rule(pid=st.sampled_from(PIDS), cid=st.sampled_from(CIDS), attempt=st.integers(0, 3))
    def stray_complete(self, pid, cid, attempt):
        with contextlib.suppress(PlannerError):
            self.core.complete(pid, cid, attempt=attempt, service_s=1.0, completion_tokens=3)

    @rule(data=st.data(), toks=st.integers(0, 500))
    def progress(self, data, toks):
        running = sorted((c for c in self.core._calls.values()
                          if c.state is CallState.RUNNING), key=lambda c: c.key)
        if not running:
            return
        call = data.draw(st.sampled_from(running))
        self.core.progress(call.program_id, call.call_id, toks)

    @rule(pid=st.sampled_from(PIDS), cid=st.sampled_from(CIDS), attempt=st.integers(0, 2))
    def cancel(self, pid, cid, attempt):
        self.core.cancel(pid, cid, attempt)

    @rule(data=st.data(), state=st.sampled_from([CallState.DONE, CallState.FAILED]))
    def complete2(self, data, state):
        self.complete(data, state, 1.0, 20, False)

    @rule(pid=st.sampled_from(PIDS), tenant=st.sampled_from(TENANTS))
    def close_program(self, pid, tenant):
        with contextlib.suppress(PlannerError):
            self.core.close_program(pid, tenant)

    @rule(pid=st.sampled_from(PIDS), tenant=st.sampled_from(TENANTS))
    def end_program(self, pid, tenant):
        try:
            program = self.core.end_program(pid, tenant)
        except PlannerError:
            return
        check_ended(self.core, program)

    @rule(dt=st.sampled_from([0.1, 0.5, 1.0, 2.5, 5.0, 11.0, 31.0, 60.0, 120.0]))
    def advance(self, dt):
        self.clock.advance(dt)

    @rule()
    def expire(self):
        self.core.expire()

    @rule()
    def heartbeat_all(self):
        for w in list(self.core._workers.values()):
            self.core.upsert_worker(w.worker_id, w.address, w.max_inflight, healthy=w.healthy,
                                    kv_tokens=w.kv_tokens)

    @rule(wid=st.sampled_from(WIDS), data=st.data())
    def reconcile(self, wid, data):
        running = sorted((c for c in self.core._calls.values() if c.state is CallState.RUNNING
                          and c.worker_id == wid), key=lambda c: c.key)
        known = data.draw(st.lists(st.sampled_from(running), unique=True)) if running else []
        self.core.reconcile_worker(wid, {(c.program_id, c.call_id, c.attempt) for c in known})

    @rule(wa=st.sampled_from([1.0, 2.0, 5.0]), wb=st.sampled_from([1.0, 3.0]))
    def weights(self, wa, wb):
        self.core.set_tenant_weights({"a": wa, "b": wb})

    @rule()
    def restart(self):
        """A new planner process restores the open programs as they were persisted."""
        old = self.core
        wall = 5_000_000.0
        now = self.clock.now()
        snap = []
        for program in old._programs.values():
            meta = program_fields(program, wall, now)
            calls = {cid: call_json(c, wall, now) for cid, c in program.calls.items()}
            snap.append((program.program_id, meta, calls))
        workers = [(w.worker_id, w.address, w.max_inflight, w.healthy, w.kv_tokens)
                   for w in old._workers.values()]
        running_before = {c.key: (c.worker_id, c.attempt) for c in old._calls.values()
                          if c.state is CallState.RUNNING and c.program_id in old._programs}
        self.clock.advance(0.5)
        self.core = self.new_core()
        self._wrap()
        event(f"restart with {len(running_before)} running")
        self._publish()
        in_memory = {pid: set(calls) for pid, _, calls in snap}
        wall_now = 5_000_000.0 + self.clock.now()
        loaded = {}
        for pid, (meta, calls) in sorted(self.redis.items()):
            if meta is None or meta.get("state") == "ended":
                continue
            loaded[pid] = set(calls)
            self.core.restore(program_from_fields(pid, meta, dict(calls), wall_now,
                                                  self.clock.now()))
        assert loaded == in_memory, f"persisted programs/calls differ: {loaded} vs {in_memory}"
        for pid, _, calls in snap:
            restored = self.core._programs[pid]
            for cid, raw in calls.items():
                assert restored.calls[cid].state.value == json.loads(raw)["state"], \
                    f"{pid}/{cid} persisted as {restored.calls[cid].state} but was {json.loads(raw)['state']}"

        for wid, addr, cap, healthy, kv in workers:
            self.core.upsert_worker(wid, addr, cap, healthy=healthy, kv_tokens=kv)
        running_after = {c.key: (c.worker_id, c.attempt) for c in self.core._calls.values()
                         if c.state is CallState.RUNNING}
        assert running_before == running_after, (running_before, running_after)
        self.granted = {}

    @rule(data=st.data())
    def readmit_orphan(self, data):
        orphans = sorted(self.core._orphans)
        if not orphans:
            return
        key = data.draw(st.sampled_from(orphans))
        call = self.core._orphans[key][0]
        with contextlib.suppress(PlannerError):
            self.core.submit(call.program_id, call.tenant, call.call_id,
                             thread_id=call.thread_id, parents=call.parents)

    @rule()
    def events(self):
        self.core.take_events()

    # ---------------------------------------------------------------- the store, modelled
    def _publish(self):
        wall, now = 5_000_000.0 + self.clock.now(), self.clock.now()
        for ev in self.core.take_events():
            if isinstance(ev, CallChanged):
                c = ev.call
                entry = self.redis.setdefault(c.program_id, [None, {}])
                entry[1][c.call_id] = call_json(c, wall, now)
            elif isinstance(ev, ProgramEnded):
                entry = self.redis.setdefault(ev.program.program_id, [None, {}])
                entry[0] = dict(entry[0] or {}, state="ended")
            elif isinstance(ev, ProgramRegistered):
                p = ev.program
                entry = self.redis.setdefault(p.program_id, [None, {}])
                if ev.fresh:  # a new run: nothing of an earlier one kept (planner/store.py)
                    entry[1] = {}
                entry[0] = program_fields(p, wall, now)

    @invariant()
    def published(self):
        self._publish()

    @invariant()
    def consistent(self):
        check_consistent(self.core)

    def teardown(self):
        """Eventually: workers come and run everything, callers end their programs;
        nothing is left anywhere."""
        self._drain()

    def _drain(self):
        core = self.core
        # orphans re-admitted or left to expire: let them expire
        for _ in range(60):
            for w in WIDS:
                core.upsert_worker(w, f"addr-{w}", 3, healthy=True)
            self.clock.advance(1.0)
            core.expire()
            self._check_grants(core.dispatch())
            for c in sorted((c for c in core._calls.values() if c.state is CallState.RUNNING),
                            key=lambda c: c.key):
                core.complete(c.program_id, c.call_id, service_s=0.5, completion_tokens=10)
            if not core._calls and not core._orphans:
                break
        check_consistent(core)
        stuck = [(c.key, c.state.value, c.in_queue, c.lane, sorted(c.excluded))
                 for c in core._calls.values()]
        assert not stuck, f"calls never ran with every worker free: {stuck}"
        for pid in list(core._programs):
            p = core._programs[pid]
            check_ended(core, core.end_program(pid, p.tenant))
        assert not core._calls and not core._draining and not core._orphans
        assert len(core._queue) == 0 and len(core._admission) == 0
        assert not core._waiting_on, f"_waiting_on left: {core._waiting_on}"
        assert core._blocked == 0
        assert not core._parked._parked
