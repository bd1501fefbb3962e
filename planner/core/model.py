"""Planner state: programs, calls, workers, grants, the events the core emits, and its errors."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from ostinato.program_ids import namespace_of


class PlannerError(Exception):
    """Base of the errors the core raises; the service maps each to a gRPC status."""


class UnknownProgram(PlannerError):
    pass


class ProgramClosed(PlannerError):
    pass


class DuplicateCall(PlannerError):
    pass


class UnknownParent(PlannerError):
    pass


class ProgramIdInUse(PlannerError):
    """A program id registered again while calls of its ended run still run: their
    records (keyed by program and call id) would be taken for the new run's."""


class NoSuchCall(PlannerError):
    pass


class Overloaded(PlannerError):
    """Refused at once: the queue (overall or the tenant's) is full, or the tenant has as
    many programs open as it may."""


class DeadlineExceeded(PlannerError):
    """The program asked to be rejected once its deadline can no longer be met."""


def past_deadline(program_id: str, deadline_at: float, now: float) -> DeadlineExceeded:
    """Why a call of a reject_when_late program is refused (at submit, or when popped)."""
    return DeadlineExceeded(f"program {program_id!r} is past its deadline "
                            f"(by {now - deadline_at:.2f}s)")


class CallState(enum.Enum):
    BLOCKED = "blocked"  # waiting for parent calls to finish
    QUEUED = "queued"  # in the global queue
    RUNNING = "running"  # granted to a worker
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (CallState.DONE, CallState.FAILED, CallState.CANCELLED)


# Work units: an output token is 1, an uncached prompt token about 1/50 of one (a decode step
# costs about as much as prefilling 50 tokens on the profiled GPUs). Unlike engine seconds,
# work does not inflate with load, so sizes learned at one load compare at another.
PREFILL_WORK = 1 / 50


def work_of(output_tokens: int, uncached_prompt_tokens: int) -> float:
    return output_tokens + uncached_prompt_tokens * PREFILL_WORK


NO_WORKERS: frozenset[str] = frozenset()  # shared: an empty frozenset is a new object each time


@dataclass(slots=True, eq=False)
class CallRecord:
    """One call of a program. Slotted: a record per call is the planner's main allocation,
    and each one the garbage collector traverses (a dict per record doubled both). Compared
    by identity: two records are two calls (or two attempts), whatever their fields say, and
    the queue finds a record among its entries by it (planner/core/lanes.py)."""

    program_id: str
    call_id: str
    tenant: str
    thread_id: str
    parents: tuple[str, ...]
    prompt_tokens: int
    max_new_tokens: int
    arrival: float
    hint: int = 0  # the client's expected_output_tokens (0: none)
    state: CallState = CallState.QUEUED
    dispatched_at: float | None = None
    finished_at: float | None = None
    worker_id: str = ""
    worker_address: str = ""
    priority: int = 0
    score: float = 0.0  # the priority policy's score at enqueue (lower runs sooner)
    critical_path_s: float = 0.0  # ATLAS: service along the longest chain of parents
    expected_output: int = 0  # hint from the client, or the estimator's guess (refined as it streams)
    generated_tokens: int = 0  # output so far, from the worker's progress reports
    remaining_work: float = 0.0  # the program's true remaining work (cluster simulator only)
    # Chained block hashes of the prompt, for routing: dropped once the call ends (a
    # program's records stay until it ends; these were most of what each one held)
    prefix_hashes: tuple[int, ...] = ()
    # Leading prompt blocks each worker's engine holds, from the KV-reference index in Redis
    # (looked up at admission); None: unknown, routing falls back to its own estimate.
    kv_matches: Mapping[str, int] | None = None
    service_s: float = 0.0
    prompt_tokens_used: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0  # of completion_tokens, a reasoning model's thinking
    recovered: bool = False  # restored from Redis by a restarted planner, not yet re-admitted
    attempt: int = 1  # 1, then one more per retry after its worker failed
    excluded: frozenset[str] = NO_WORKERS  # workers its earlier attempts failed on
    # The worker its gateway started it on ahead of its grant (an early start), until it
    # starts here: elsewhere, it starts as its next attempt (planner/core/dispatch.py `_start`)
    started_on: str = field(default="", compare=False, repr=False)
    started_priority: int = field(default=0, compare=False, repr=False)  # that run's priority
    # That early run was confirmed as its attempt: it ran from its admission, not its grant
    # (what its report may charge: planner/core/reports.py `_used`)
    ran_early: bool = field(default=False, compare=False, repr=False)
    # Waiting for its home worker (planner/core/parking.py): since when, and for how long in all
    parked_since: float | None = None
    parked_s: float = 0.0
    # Whether ParkedCalls holds this record (it is its key's parking): read from the record,
    # a parking order's stale entries are told apart without a look-up of their keys
    parked: bool = field(default=False, compare=False, repr=False)
    # Counted in the queue (planner/core/queue_state.py): pushed, not yet popped or
    # discarded; in which lane ("": the global one; else the worker it is parked on), since
    # when, and until when it may be passed over (the record is its queue entry: no tuple
    # per entry)
    in_queue: bool = field(default=False, compare=False, repr=False)
    lane: str = field(default="", compare=False, repr=False)
    queued_at: float = field(default=0.0, compare=False, repr=False)
    until: float = field(default=0.0, compare=False, repr=False)
    due_seq: int = field(default=0, compare=False, repr=False)  # its latest push's number
    key: str = field(init=False, compare=False, repr=False)  # call_key(); ids never change
    # Cancelled while it ran: its worker's report (what it used until its engine stopped)
    # is still to come; a program's end waits for it (planner/service.py _settled)
    usage_to_come: bool = field(default=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.key = call_key(self.program_id, self.call_id)

    @property
    def remaining_output(self) -> int:
        """Estimated output tokens still to come (0 once finished)."""
        if self.state.finished:
            return 0
        return max(0, self.expected_output - self.generated_tokens)


def call_key(program_id: str, call_id: str) -> str:
    return f"{program_id}/{call_id}"


@dataclass(slots=True)
class Program:
    program_id: str
    tenant: str
    created_at: float
    deadline_at: float | None = None
    reject_when_late: bool = False
    program_class: str = ""
    calls: dict[str, CallRecord] = field(default_factory=dict)
    attained_service_s: float = 0.0
    attained_work: float = 0.0  # output tokens + uncached prompt tokens x PREFILL_WORK (load-free)
    last_active: float = 0.0
    last_worker: str = ""  # where the program's latest call ran (affinity)
    # Expected remaining work, learned from ended programs of its class
    # (planner/core/estimates.py ProgramSizeEstimator); None while there is no history.
    expected_remaining_work: float | None = None
    closed: bool = False
    # A conversation: a program the gateway found or started for requests that name none
    # (the OpenAI-compatible API): no caller ends it. It counts against its tenant's
    # max_open only while a call of it waits or runs (`live`), and its working set
    # (planner/core/admission.py) only until it has been idle `conversation_kv_idle_s`.
    conversation: bool = False
    # its calls waiting or running: counted for conversations, and for an ended program
    # (its calls still running then: its id is not registered again until they end)
    live: int = 0
    # the caller's id of the registration that opened it (RegisterProgramRequest's): a
    # retry of that registration is told it opened the program
    registration: str = ""
    # a declared program (RunProgram's DAG): expired once idle declared_idle_ttl_s
    declared: bool = False
    # thread -> its latest call's id: what a call naming no parents continues (chains.py)
    thread_tails: dict[str, str] = field(default_factory=dict)

    @property
    def namespace(self) -> str:
        """Its tenant's namespace (ostinato/program_ids.py: the name and generation), what
        max_open counts by: a tenant revoked and created again starts at none open."""
        return namespace_of(self.program_id, self.tenant)


@dataclass(slots=True)
class WorkerState:
    worker_id: str
    address: str
    max_inflight: int
    last_seen: float
    simulated: bool = False
    healthy: bool = True  # False: its engine failed its health check; nothing starts here
    kv_tokens: int = 0  # its engine's KV pool, as the worker reports it (0: unknown)
    inflight: int = 0
    tenants: dict[str, int] = field(default_factory=dict)  # running calls here, per tenant

    @property
    def free(self) -> int:
        return max(0, self.max_inflight - self.inflight)


@dataclass(frozen=True, slots=True)
class Grant:
    program_id: str
    call_id: str
    worker_id: str
    worker_address: str
    priority: int
    queued_s: float
    matched_blocks: int = 0  # leading prompt blocks the worker's engine held (KV index)
    parked_s: float = 0.0  # of queued_s, how long it waited for its home worker
    attempt: int = 1


def new_grant(program_id: str, call_id: str, worker_id: str, worker_address: str,
              priority: int, queued_s: float, matched_blocks: int, parked_s: float,
              attempt: int) -> Grant:
    """`Grant(...)` with every field given, for the decision path (one per grant): the same
    object, built without the frozen dataclass's `__init__`, which sets each field through
    `object.__setattr__` by name (~0.85 us a grant on the bench's machine, against ~0.4 us
    through the slots' own descriptors)."""
    grant = _new(Grant)
    _set_program_id(grant, program_id)
    _set_call_id(grant, call_id)
    _set_worker_id(grant, worker_id)
    _set_worker_address(grant, worker_address)
    _set_priority(grant, priority)
    _set_queued_s(grant, queued_s)
    _set_matched_blocks(grant, matched_blocks)
    _set_parked_s(grant, parked_s)
    _set_attempt(grant, attempt)
    return grant


_new = object.__new__
_GRANT_FIELDS = ("program_id", "call_id", "worker_id", "worker_address", "priority", "queued_s",
                 "matched_blocks", "parked_s", "attempt")
if tuple(f.name for f in fields(Grant)) != _GRANT_FIELDS:  # new_grant sets each of them
    raise TypeError("Grant's fields changed: update new_grant")
(_set_program_id, _set_call_id, _set_worker_id, _set_worker_address, _set_priority,
 _set_queued_s, _set_matched_blocks, _set_parked_s, _set_attempt) = (
    vars(Grant)[name].__set__ for name in _GRANT_FIELDS)


# Events: the core appends them to its outbox; the service publishes them (to Redis).


@dataclass(frozen=True, slots=True)
class ProgramRegistered:
    program: Program
    # a new run of the id (not a change of the open one: its close): nothing of an earlier
    # run of the same id may be kept with it (its calls, the expiry its end set)
    fresh: bool = True


@dataclass(frozen=True, slots=True)
class CallChanged:
    call: CallRecord


def call_changed(call: CallRecord) -> CallChanged:
    """`CallChanged(call)` for the decision path, as `new_grant` builds a Grant."""
    event = _new(CallChanged)
    _set_call(event, call)
    return event


_set_call = vars(CallChanged)["call"].__set__  # the slot's descriptor


@dataclass(frozen=True, slots=True)
class CallRefused(CallChanged):
    """A call that failed before it started, and why: its Admit caller is told `error`."""

    error: PlannerError


@dataclass(frozen=True, slots=True)
class ProgramEnded:
    program: Program


Event = ProgramRegistered | CallChanged | ProgramEnded
