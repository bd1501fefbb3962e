"""The discrete-event cluster simulator: the real planner core and N sim engines in virtual time.

SIMULATED: engines are workers/sim's SGLang-like scheduler with the roofline cost model.
Clients follow each program's shape: a call is submitted when all its parents have
finished plus the program's think time (tool execution), parallel branches run together.
Every call's timeline is recorded (ready, dispatched, first token, finished, worker,
prompt and cached tokens).

The loop handles, in time order, client events (program arrivals, calls becoming ready)
and engine iterations ending; after each it lets the planner dispatch. Engine priorities
come from the planner's grants, as SGLang's `priority` does in the live mesh.
"""

from __future__ import annotations

import copy
import heapq
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.programs import ProgramPlan, shared_prefix_ids
from cache.block_hash import DEFAULT_BLOCK_SIZE, chain_hash, salt_seed
from ostinato.clock import ManualClock
from planner.core.estimates import OutputEstimator, ProgramSizeEstimator
from planner.core.model import work_of
from planner.core.planner import PlannerCore
from planner.core.selection import parse_policy
from workers.sim.cost_model import CostModel, Profile
from workers.sim.scheduler import EngineParams, Req, SimEngineCore
from workers.sim.text import FixedLengthDecoder


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


@dataclass(slots=True)
class CallTimeline:
    program: int
    call: int
    ready: float  # submitted to the planner
    dispatched: float = -1.0
    first_token: float = -1.0
    finished: float = -1.0
    worker: int = -1
    prompt_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    failed: bool = False


@dataclass(slots=True)
class ProgramOutcome:
    plan: ProgramPlan
    finished: float = -1.0  # virtual time the last call finished
    failed_calls: int = 0


@dataclass
class SimRun:
    outcomes: list[ProgramOutcome]
    calls: list[CallTimeline]
    simulated_s: float
    wall_s: float
    engine_busy_s: list[float]


_ARRIVE, _READY = 0, 1


class _ProgramState:
    __slots__ = (
        "done",
        "hashes",
        "outcome",
        "outputs",
        "pending_children",
        "plan",
        "prompts",
        "remaining_work",
    )

    def __init__(self, plan: ProgramPlan, outcome: ProgramOutcome) -> None:
        self.plan = plan
        self.outcome = outcome
        self.prompts: dict[int, list[int]] = {}
        self.outputs: dict[int, list[int]] = {}
        self.hashes: dict[int, list[int]] = {}
        self.done = 0
        self.remaining_work = sum(work_of(c.output_tokens, c.new_tokens) for c in plan.calls)
        children: dict[int, list[int]] = {}
        for c in plan.calls:
            for p in c.parents:
                children.setdefault(p, []).append(c.index)
        self.pending_children = children


def _extend_hashes(known: list[int], tokens: list[int], salt: str) -> list[int]:
    """Chained block hashes of `tokens`, reusing `known` (the hashes of a prefix of them)."""
    bs = DEFAULT_BLOCK_SIZE
    out = list(known)
    parent = out[-1] if out else salt_seed(salt)
    for start in range(len(out) * bs, len(tokens) - bs + 1, bs):
        parent = chain_hash(parent, tokens[start:start + bs])
        out.append(parent)
    return out


@dataclass(frozen=True)
class Learned:
    """What a planner learns from finished work (output lengths, program sizes per class):
    carried from a warm-up run so that measured runs start as a planner in service does."""

    outputs: OutputEstimator
    program_sizes: ProgramSizeEstimator


class ClusterSim:
    def __init__(self, programs: list[ProgramPlan], policy: str, profile: Profile,
                 config: ClusterConfig = ClusterConfig(), learned: Learned | None = None) -> None:
        self.programs = programs
        self.config = config
        self.clock = ManualClock()
        priority, routing = parse_policy(policy)
        self._routing_uses_hashes = routing.name == "cache_aware"
        self._oracle = priority.name == "oracle"
        self.core = PlannerCore(self.clock, priority, routing, worker_ttl_s=float("inf"),
                                program_idle_ttl_s=float("inf"),
                                tenant_weights=config.tenant_weights,
                                starvation_ratio=config.starvation_ratio,
                                max_home_wait_s=config.max_home_wait_s)
        if learned is not None:
            self.core.estimator = copy.deepcopy(learned.outputs)
            self.core.program_sizes = copy.deepcopy(learned.program_sizes)
        cost = CostModel(profile)
        params = EngineParams(
            max_total_tokens=config.kv_tokens or profile.kv_capacity_tokens,
            chunked_prefill_size=config.chunked_prefill_size,
            max_running_requests=config.max_running_requests,
            schedule_policy=config.schedule_policy, enable_priority=True,
            fast_forward=True, kv_events=False, stream_events=False,
        )
        self.engines = [SimEngineCore(cost, params) for _ in range(config.engines)]
        for i in range(config.engines):
            self.core.upsert_worker(f"e{i}", f"sim-engine-{i}", config.budget, simulated=True)
        self._heap: list[tuple[float, int, int, int, int]] = []
        self._seq = 0
        self._states: dict[int, _ProgramState] = {}
        self._timelines: dict[tuple[int, int], CallTimeline] = {}
        self.calls: list[CallTimeline] = []
        self.outcomes = [ProgramOutcome(p) for p in programs]

    def learned(self) -> Learned:
        return Learned(self.core.estimator, self.core.program_sizes)

    def _push(self, t: float, kind: int, program: int, call: int = -1) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, kind, program, call))

    def run(self, progress: Callable[[int], None] | None = None) -> SimRun:
        start = time.perf_counter()
        for p in self.programs:
            self._push(p.arrival, _ARRIVE, p.index)
        engines = self.engines
        heap = self._heap
        finished_programs = 0
        while True:
            t_eng, e_idx = None, -1
            for i, engine in enumerate(engines):
                nxt = engine.next_event_time()
                if nxt is not None and (t_eng is None or nxt < t_eng):
                    t_eng, e_idx = nxt, i
            if heap and (t_eng is None or heap[0][0] <= t_eng):
                t, _, kind, pidx, cidx = heapq.heappop(heap)
                self.clock.set(t)
                if kind == _ARRIVE:
                    self._arrive(pidx)
                else:
                    self._ready(pidx, cidx)
            elif t_eng is not None:
                self.clock.set(t_eng)
                for event in engines[e_idx].step(t_eng):
                    if event.finished:
                        finished_programs += self._finished(event)
                if progress is not None and finished_programs:
                    progress(finished_programs)
                    finished_programs = 0
            else:
                break
            self._dispatch()
        end = max((o.finished for o in self.outcomes), default=0.0)
        return SimRun(self.outcomes, self.calls, simulated_s=end,
                      wall_s=time.perf_counter() - start,
                      engine_busy_s=[e.busy_s for e in engines])

    # ---- clients -----------------------------------------------------------------------

    def _arrive(self, pidx: int) -> None:
        plan = self.programs[pidx]
        self._states[pidx] = _ProgramState(plan, self.outcomes[pidx])
        self.core.register_program(plan.program_id, plan.tenant, deadline_s=plan.deadline_s,
                                   program_class=plan.klass.name)
        for call in plan.calls:
            if not call.parents:
                self._ready(pidx, call.index)

    def _prompt(self, st: _ProgramState, cidx: int) -> list[int]:
        plan = st.plan
        call = plan.calls[cidx]
        new = call.new_ids(plan.index)
        if not call.parents:
            return [*shared_prefix_ids(plan.klass), *new]
        outputs = [t for p in call.parents for t in st.outputs[p]]
        if plan.klass.context == "accumulate":
            return [*st.prompts[call.parents[0]], *outputs, *new]
        return [*shared_prefix_ids(plan.klass), *outputs, *new]

    def _ready(self, pidx: int, cidx: int) -> None:
        st = self._states[pidx]
        plan = st.plan
        call = plan.calls[cidx]
        prompt = self._prompt(st, cidx)
        st.prompts[cidx] = prompt
        hashes: list[int] = []
        if self._routing_uses_hashes:
            known = st.hashes.get(call.parents[0], []) if call.parents and \
                plan.klass.context == "accumulate" else []
            hashes = _extend_hashes(known, prompt, plan.salt)
            st.hashes[cidx] = hashes
        now = self.clock.now()
        tl = CallTimeline(pidx, cidx, ready=now, prompt_tokens=len(prompt))
        self._timelines[(pidx, cidx)] = tl
        self.calls.append(tl)
        self.core.submit(plan.program_id, plan.tenant, str(cidx),
                         thread_id=str(cidx), parents=[str(p) for p in call.parents],
                         prompt_tokens=len(prompt), max_new_tokens=call.output_tokens,
                         prefix_hashes=hashes,
                         remaining_work=st.remaining_work if self._oracle else 0.0)

    # ---- planner and engines ------------------------------------------------------------

    def _dispatch(self) -> None:
        now = self.clock.now()
        for grant in self.core.dispatch():
            pidx, cidx = int(grant.program_id[1:]), int(grant.call_id)
            st = self._states[pidx]
            call = st.plan.calls[cidx]
            e_idx = int(grant.worker_id[1:])
            tl = self._timelines[(pidx, cidx)]
            tl.dispatched, tl.worker = now, e_idx
            req = Req(f"{pidx}/{cidx}", st.prompts[cidx],
                      FixedLengthDecoder(call.output_tokens, call.first_output_id(pidx)),
                      priority=grant.priority, salt=st.plan.salt)
            self.engines[e_idx].submit(req, now)

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
        st.outputs[cidx] = list(event.output_ids)
        st.remaining_work -= work_of(call.output_tokens, call.new_tokens)
        st.done += 1
        for child in st.pending_children.get(cidx, ()):
            if all(p in st.outputs for p in plan.calls[child].parents):
                self._push(now + plan.calls[child].think_s, _READY, pidx, child)
        if st.done < len(plan.calls):
            return 0
        st.outcome.finished = now
        self.core.end_program(plan.program_id, plan.tenant)
        del self._states[pidx]
        return 1
