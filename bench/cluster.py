"""The discrete-event cluster simulator: the real planner core and N sim engines in virtual time.

SIMULATED: engines are workers/sim's SGLang-like scheduler with the roofline cost model.
Clients follow each program's shape: a call is submitted when all its parents have
finished plus the program's think time (tool execution), parallel branches run together.
Every call's timeline is recorded (ready, dispatched, first token, finished, worker,
prompt and cached tokens).

The loop handles, in time order, client events (program arrivals, calls becoming ready)
and engine iterations ending; after each it lets the planner dispatch. Engine priorities
come from the planner's grants, as SGLang's `priority` does in the live mesh.

What the planner learns is what the live planner learns, through the same calls on the same
core: clients send the class's `max_tokens` (never the drawn output length) and the
`program_class` label only when the class is labelled; each call's prefix block hashes come
from cache/block_hash (the gateway's function), and its KV matches from an index fed by the
engines' own KV events (cache/kv_holdings.py, what Redis holds live), looked up at
admission as the planner service does. Running calls report progress in steps of
PROGRESS_EVERY_TOKENS generated tokens, as workers do, but only when their engine's
iteration ends: the sim engine runs a decode stretch to the next finish or arrival in one
iteration, so a long call's progress reaches the planner in lumps (a bench review saw one
report of 653 tokens where a worker would have sent ten). The simulated planner thus knows
less of running calls than a live one, which can only cost the policies that read progress.

A finite run ends when every program has finished. A steady-state run (`SteadyState`,
../shared/workload-spec.md) draws programs from an endless arrival stream and ends when
every program arriving in the measured window has finished, or at the horizon.
"""

from __future__ import annotations

import copy
import gc
import heapq
import time
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from bench.program_state import ProgramState
from bench.programs import ProgramPlan, shared_prefix_ids
from bench.sim_run import CallTimeline, ProgramOutcome, SimRun, SteadyState
from cache.block_hash import DEFAULT_BLOCK_SIZE, extend_prefix_block_hashes, prefix_block_hashes
from cache.kv_holdings import KvHoldings
from ostinato.clock import ManualClock
from planner.core.estimates import OutputEstimator, ProgramSizeEstimator
from planner.core.model import work_of
from planner.core.planner import PlannerCore
from planner.core.selection import parse_policy
from planner.core.tenants import ISOLATION_BUDGET, ISOLATION_FRACTION
from workers.sim.cost_model import CostModel, Profile
from workers.sim.scheduler import EngineParams, Req, SimEngineCore
from workers.sim.text import FixedLengthDecoder
from workers.sim.token_ids import pack, unsigned  # the workload's ids are never negative


@dataclass(frozen=True)
class ClusterConfig:
    engines: int = 8
    budget: int = 32  # calls in flight per engine, granted by the planner
    max_running_requests: int = 256
    chunked_prefill_size: int = 8192
    schedule_policy: str = "fcfs"
    starvation_ratio: float = 4.0
    max_home_wait_s: float = 2.0  # a call waits this long for the engine holding its context
    tenant_weights: dict[str, float] = field(default_factory=dict)
    kv_tokens: int | None = None  # KV pool per engine; None: what the profile's GPU holds
    # Program admission (planner/core/admission.py): the planner is told each engine's KV pool
    # and starts programs while their contexts fit in this fraction of it; 0: off.
    program_kv_fraction: float = 0.8
    # Tenant isolation (planner/core/tenants.py): of an engine's budget, what heavy tenants
    # may fill while a light tenant is active; 1: no limit. The planner's default.
    isolation_fraction: float = ISOLATION_FRACTION
    isolation_budget: int = ISOLATION_BUDGET  # judges an engine's batch where its budget is larger
    # Tenant shares' room holding and boost (planner/core/tenants.py `hold`); "off": none.
    tenant_shares: str = "waiting"


PROGRESS_EVERY_TOKENS = 64  # what workers/service.py reports by default
BLOCK_SIZE = DEFAULT_BLOCK_SIZE  # the gateway's and the engines' (EngineParams.block_size)


_ARRIVE, _READY, _HOUSEKEEPING = 0, 1, 2
HOUSEKEEPING_S = 1.0  # the live planner's housekeeping period (PlannerService.housekeeping)


@dataclass(frozen=True)
class Learned:
    """What a planner learns from finished work (output lengths, program sizes per class):
    carried from a warm-up run so that measured runs start as a planner in service does."""

    outputs: OutputEstimator
    program_sizes: ProgramSizeEstimator


class ClusterSim:
    def __init__(self, programs: Iterable[ProgramPlan], policy: str, profile: Profile,
                 config: ClusterConfig = ClusterConfig(), learned: Learned | None = None,
                 steady: SteadyState | None = None) -> None:
        self.programs: list[ProgramPlan] = []  # those that arrived, by index
        self._source = iter(programs)
        self.config = config
        self.steady = steady
        self.clock = ManualClock()
        priority, routing = parse_policy(policy)
        self._knows_future = priority.name == "clairvoyant"
        kv_pool = config.kv_tokens or profile.kv_capacity_tokens
        self.core = PlannerCore(self.clock, priority, routing, worker_ttl_s=float("inf"),
                                program_idle_ttl_s=float("inf"),
                                tenant_weights=config.tenant_weights,
                                starvation_ratio=config.starvation_ratio,
                                max_home_wait_s=config.max_home_wait_s,
                                program_admission=config.program_kv_fraction > 0,
                                program_kv_fraction=config.program_kv_fraction or 1.0,
                                isolation_fraction=config.isolation_fraction,
                                isolation_budget=config.isolation_budget,
                                tenant_shares=config.tenant_shares)
        if learned is not None:
            self.core.estimator = copy.deepcopy(learned.outputs)
            self.core.program_sizes = copy.deepcopy(learned.program_sizes)
        cost = CostModel(profile)
        params = EngineParams(
            max_total_tokens=kv_pool,
            chunked_prefill_size=config.chunked_prefill_size,
            max_running_requests=config.max_running_requests,
            schedule_policy=config.schedule_policy, enable_priority=True,
            fast_forward=True, kv_events=True, stream_events=False,
        )
        self.engines = [SimEngineCore(cost, params) for _ in range(config.engines)]
        self._worker_ids = [f"e{i}" for i in range(config.engines)]
        for i, worker_id in enumerate(self._worker_ids):
            # As a live worker does: its engine's KV pool (SGLang's max_total_num_tokens).
            self.core.upsert_worker(worker_id, f"sim-engine-{i}", config.budget, simulated=True,
                                    kv_tokens=kv_pool)
        self.kv = KvHoldings()
        self._heap: list[tuple[float, int, int, int, int]] = []
        self._seq = 0
        self._housekeeping = False  # its event is scheduled (once programs are left to expire)
        self._states: dict[int, ProgramState] = {}
        self._timelines: dict[tuple[int, int], CallTimeline] = {}
        self.calls: list[CallTimeline] = []
        self.outcomes: list[ProgramOutcome] = []
        self._shared_prefixes: dict[tuple[str | None, int, str, int], tuple[array[int], list[int]]] = {}
        self._measured_open = 0  # measured programs arrived and not finished

    def learned(self) -> Learned:
        return Learned(self.core.estimator, self.core.program_sizes)

    def _push(self, t: float, kind: int, program: int, call: int = -1) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, kind, program, call))

    def _next_arrival(self) -> None:
        plan = next(self._source, None)
        if plan is None:
            return
        if plan.index != len(self.programs):
            raise ValueError("programs must come in index order, from 0")
        if self.steady is not None and plan.arrival >= self.steady.horizon:
            return  # the run is over before it arrives
        self.programs.append(plan)
        self._push(plan.arrival, _ARRIVE, plan.index)

    def _done(self, now: float) -> bool:
        steady = self.steady
        return steady is not None and self._measured_open == 0 and now >= steady.window[1]

    def run(self, progress: Callable[[int], None] | None = None) -> SimRun:
        gc.disable()  # the loop allocates much and frees it at once: collections only cost
        try:
            return self._run(progress)
        finally:
            gc.enable()

    def _run(self, progress: Callable[[int], None] | None) -> SimRun:
        start, cpu_start = time.perf_counter(), time.process_time()
        self._next_arrival()
        engines = self.engines
        heap = self._heap
        horizon = self.steady.horizon if self.steady is not None else float("inf")
        inf = float("inf")
        # each engine's next iteration end; inf: idle (so min() finds the next, first by index)
        nexts = [inf if (t := e.next_event_time()) is None else t for e in engines]
        finished_programs = 0
        now = 0.0
        while True:
            t_eng = min(nexts)
            client = bool(heap) and heap[0][0] <= t_eng  # a client event first (ties too)
            t_next = heap[0][0] if client else t_eng
            if t_next > horizon:
                if t_next < inf:
                    now = horizon  # cut: what is still running is not completed
                break
            if t_next == inf or self._done(now):
                break
            now = t_next
            self.clock.set(now)
            if client:
                _, _, kind, pidx, cidx = heapq.heappop(heap)
                if kind == _ARRIVE:
                    self._arrive(pidx)
                    self._next_arrival()
                elif kind == _READY:
                    self._ready(pidx, cidx)
                else:  # as the live planner's: idle conversations stop counting, then expire
                    self.core.expire()
                    if heap or self._states:
                        self._push(now + HOUSEKEEPING_S, _HOUSEKEEPING, -1)
                touched = self._dispatch()
            else:
                e_idx = nexts.index(t_eng)
                engine = engines[e_idx]
                for event in engine.step(now):
                    if event.finished:
                        finished_programs += self._finished(event)
                self.kv.apply(self._worker_ids[e_idx], engine.cache.take_events())
                self._report_progress(engine)
                if progress is not None and finished_programs:
                    progress(finished_programs)
                    finished_programs = 0
                touched = self._dispatch()
                touched.append(e_idx)
            for i in set(touched) if len(touched) > 1 else touched:
                nexts[i] = inf if (t := engines[i].next_event_time()) is None else t
        ended = min(now, horizon) if self.steady is not None else \
            max((o.finished for o in self.outcomes), default=0.0)
        return SimRun(self.outcomes, self.calls, simulated_s=ended,
                      wall_s=time.perf_counter() - start,
                      engine_busy_s=[e.busy_s for e in engines], steady=self.steady,
                      cpu_s=time.process_time() - cpu_start)

    # ---- clients -----------------------------------------------------------------------

    def _arrive(self, pidx: int) -> None:
        plan = self.programs[pidx]
        outcome = ProgramOutcome(plan, measured=self.steady is None
                                 or self.steady.measures(plan.arrival))
        self.outcomes.append(outcome)
        self._measured_open += outcome.measured and self.steady is not None
        self._states[pidx] = ProgramState(plan, outcome)
        ends = plan.klass.ends_programs
        self.core.register_program(plan.program_id, plan.tenant, deadline_s=plan.deadline_s,
                                   program_class=plan.klass.name if plan.klass.labelled else "",
                                   conversation=not ends)
        if not ends and not self._housekeeping:  # programs that only the planner expires
            self._housekeeping = True
            self._push(self.clock.now() + HOUSEKEEPING_S, _HOUSEKEEPING, -1)
        for call in plan.calls:
            if not call.parents:
                self._ready(pidx, call.index)

    def _shared(self, plan: ProgramPlan) -> tuple[array[int], list[int]]:
        """The class's shared prefix and its block hashes under the program's salt (the
        same for every program of the class and salt: computed once)."""
        sp = plan.klass.shared_prefix
        key = ((None, 0, plan.salt, 0) if sp is None
               else (sp.id, sp.tokens, plan.salt, plan.shared_tokens))
        got = self._shared_prefixes.get(key)
        if got is None:
            ids = pack(shared_prefix_ids(plan.klass))
            got = self._shared_prefixes[key] = (ids, prefix_block_hashes(
                ids, plan.salt, shared_tokens=plan.shared_tokens))
        return got

    def _prompt(self, st: ProgramState, cidx: int) -> tuple[array[int], Sequence[int]]:
        """The call's prompt, and the block hashes of a prefix of it already known."""
        plan = st.plan
        call = plan.calls[cidx]
        new = pack(call.new_ids(plan.index))
        parents = call.parents
        if parents and plan.klass.context == "accumulate":
            # its first parent's prompt and output, then the other parents' outputs
            head, known = st.contexts[parents[0]], st.hashes[parents[0]]
            parents = parents[1:]
        else:
            head, known = self._shared(plan)
        for p in parents:
            head = head + st.outputs[p]  # not +=: head is shared
        return head + new, known

    def _ready(self, pidx: int, cidx: int) -> None:
        st = self._states[pidx]
        plan = st.plan
        call = plan.calls[cidx]
        prompt, known = self._prompt(st, cidx)
        st.prompts[cidx] = prompt
        decoder = FixedLengthDecoder(call.output_tokens, call.first_output_id(pidx),
                                     max_new_tokens=plan.klass.max_tokens)
        st.decoders[cidx] = decoder
        if plan.klass.context == "accumulate" and cidx in st.pending_children:
            # its children's prompts extend its context: hash that, once (the prompt's block
            # hashes are the first of its context's; the engine takes the rest)
            context = st.contexts[cidx] = prompt + decoder.output()
            hashes = st.hashes[cidx] = extend_prefix_block_hashes(
                known, unsigned(context), plan.salt, shared_tokens=plan.shared_tokens)
        else:  # nothing extends it: its engine hashes the output's blocks, as it inserts them
            hashes = st.hashes[cidx] = extend_prefix_block_hashes(
                known, unsigned(prompt), plan.salt, shared_tokens=plan.shared_tokens)
        prefix_hashes = hashes[:len(prompt) // BLOCK_SIZE]
        for p in call.parents:  # finished: their engines have their hashes
            if (left := st.unready_children[p] - 1) == 0:
                st.contexts.pop(p, None)
                del st.hashes[p]
            st.unready_children[p] = left
        now = self.clock.now()
        tl = CallTimeline(pidx, cidx, ready=now, prompt_tokens=len(prompt))
        self._timelines[(pidx, cidx)] = tl
        self.calls.append(tl)
        self.core.submit(plan.program_id, plan.tenant, str(cidx),
                         thread_id=str(cidx), parents=[str(p) for p in call.parents],
                         prompt_tokens=len(prompt), max_new_tokens=plan.klass.max_tokens,
                         prefix_hashes=prefix_hashes,
                         kv_matches=self.kv.longest_prefixes(self._worker_ids, prefix_hashes),
                         remaining_work=st.remaining_work if self._knows_future else 0.0)

    # ---- planner and engines ------------------------------------------------------------

    def _dispatch(self) -> list[int]:
        """Starts what the planner grants; returns the engines that got calls."""
        now = self.clock.now()
        touched = []
        for grant in self.core.dispatch():
            pidx, cidx = int(grant.program_id[1:]), int(grant.call_id)
            st = self._states[pidx]
            e_idx = int(grant.worker_id[1:])
            tl = self._timelines[(pidx, cidx)]
            tl.dispatched, tl.worker = now, e_idx
            hashes = st.hashes[cidx] if cidx in st.unready_children else st.hashes.pop(cidx)
            req = Req(f"{pidx}/{cidx}", st.prompts.pop(cidx), st.decoders.pop(cidx),
                      priority=grant.priority, salt=st.plan.salt,
                      block_hashes=hashes,  # the engine need not hash them again
                      shared_blocks=st.plan.shared_tokens // BLOCK_SIZE)
            self.engines[e_idx].submit(req, now)
            touched.append(e_idx)
        # What the live service persists after each dispatch (planner/service.py `pump`): the
        # simulator has no store, and an outbox never taken held every call's record to the end.
        self.core.take_events()
        return touched

    def _report_progress(self, engine: SimEngineCore) -> None:
        """Running calls' generated tokens, every PROGRESS_EVERY_TOKENS, as workers report."""
        for rid, n in engine.take_progress(PROGRESS_EVERY_TOKENS):
            pidx, cidx = rid.split("/")
            self.core.progress(self.programs[int(pidx)].program_id, cidx, n)

    def _finished(self, event) -> int:  # type: ignore[no-untyped-def]
        """Records a finished call, releases its children; returns 1 if its program ended."""
        pidx_s, cidx_s = event.rid.split("/")
        pidx, cidx = int(pidx_s), int(cidx_s)
        st = self._states[pidx]
        plan = st.plan
        call = plan.calls[cidx]
        now = event.time
        tl = self._timelines.pop((pidx, cidx))
        tl.finished, tl.first_token = now, event.first_token_at or now
        tl.cached_tokens, tl.output_tokens = event.cached_tokens, event.completion_tokens
        self.core.complete(plan.program_id, str(cidx), service_s=event.e2e_latency,
                           prompt_tokens=event.prompt_tokens,
                           completion_tokens=event.completion_tokens,
                           cached_tokens=event.cached_tokens)
        st.outputs[cidx] = pack(event.output_ids)
        st.remaining_work -= work_of(call.output_tokens, call.new_tokens)
        st.done += 1
        for child in st.pending_children.get(cidx, ()):
            if all(p in st.outputs for p in plan.calls[child].parents):
                self._push(now + plan.calls[child].think_s, _READY, pidx, child)
        if st.done < len(plan.calls):
            return 0
        st.outcome.finished = now
        self._measured_open -= st.outcome.measured and self.steady is not None
        if plan.klass.ends_programs:  # else a conversation, which the planner expires
            self.core.end_program(plan.program_id, plan.tenant)
        del self._states[pidx]
        return 1
