"""Program admission: a tenant starts no new program while its programs' contexts would not
fit in the engines' KV caches.

Tenant shares (planner/core/tenants.py) bound how many of a tenant's calls run at once, not
how many of its programs are open between calls. A ReAct program spends most of its life in
think time (a tool runs), its context cached in the engine only while nothing evicts it. A
tenant that floods keeps starting programs until the open programs' contexts no longer fit
in the KV cache: contexts are evicted during think time and prefilled again at the next
call, every tenant's included, and the engine completes a fraction of what it sustains
(SIMULATED, docs/bench/isolation). So the planner admits programs, not only calls:

- A program *starts* when its first call enters the global queue. Until then its calls wait
  here, per tenant in arrival order; once started, its calls queue as before (a tenant
  finishes what it started before it opens more).
- A started program's *working set* is what its calls added to the KV cache: per call, its
  prompt tokens less those the engines already held when it was admitted (the KV-reference
  index's longest match, `kv_matches`: a tenant's shared system prompt, the parent's
  context), plus the output it generated. It counts until the program ends.
- The capacity (`capacity`, set by the planner) is every healthy worker's KV pool together
  times the fraction of it that programs may hold; 0 (no pool known yet) holds no program
  back, while the working sets are still counted. Admission is off unless `enabled`.
- A program of tenant t may start when t has no program started (so every tenant always
  makes progress), or the working sets of every tenant plus its first call's fit the
  capacity, or t's own working set plus it fits t's share of the capacity: weight(t) over
  the weights of the tenants with programs started or waiting to start. A tenant within its
  share always starts programs; one above it only into room nobody else uses, and only while
  its calls waiting to run (queued or parked: `backlog`) are fewer than BACKLOG_RATIO times
  its running calls (at least 1). More programs open than its slots cycle through would only
  lengthen its queue, and a program waiting long between calls has its context evicted (the
  engine's LRU keeps ended programs' contexts, newer, instead) and prefilled again, which
  every tenant's calls wait through (SIMULATED, `flood`: the noisy tenant's later calls
  prefilled 262 new tokens each without the bound, 124 with it, the ~120 they add; it
  completed 3.0 programs/s instead of 2.64, and the quiet tenant's latency under the flood
  went from 1.76x to 1.55x; docs/bench/isolation).
Tenants furthest below their share are let in first. Per decision the cost is O(tenants
with programs waiting to start) plus the programs started, independent of queue length.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable

from cache.block_hash import DEFAULT_BLOCK_SIZE
from planner.core.model import CallRecord, CallState
from planner.core.tenants import bump_count

BACKLOG_RATIO = 0.5  # a tenant above its share starts programs while waiting < this x running


def new_tokens(call: CallRecord, block_tokens: int = DEFAULT_BLOCK_SIZE) -> int:
    """Prompt tokens of `call` that no engine held when it was admitted (KV-reference index;
    without it, the whole prompt)."""
    held = max(call.kv_matches.values(), default=0) if call.kv_matches else 0
    return max(0, call.prompt_tokens - held * block_tokens)


class _Waiting:
    __slots__ = ("calls", "tokens")

    def __init__(self) -> None:
        self.calls: list[CallRecord] = []
        self.tokens = 0  # working set it would start with


class _Started:
    """A started program's tenant and working set (tokens): updated in place as it grows,
    as a tuple per growth would allocate twice per call."""

    __slots__ = ("tenant", "tokens")

    def __init__(self, tenant: str, tokens: int) -> None:
        self.tenant, self.tokens = tenant, tokens


class ProgramAdmission:
    def __init__(self, weight: Callable[[str], float], *, enabled: bool = True,
                 capacity: int = 0, block_tokens: int = DEFAULT_BLOCK_SIZE,
                 backlog: Callable[[str], tuple[int, int]] | None = None,
                 backlog_ratio: float = BACKLOG_RATIO) -> None:
        """`backlog`: tenant -> (its calls waiting to run, its calls running); None, or
        `backlog_ratio` 0: no bound on a tenant's backlog."""
        self._weight = weight
        self._backlog = backlog if backlog_ratio > 0 else None
        self.backlog_ratio = backlog_ratio
        self.enabled = enabled
        self.capacity = capacity  # tokens the started programs' working sets may hold
        self._block = block_tokens
        self._started: dict[str, _Started] = {}  # program -> (tenant, working set)
        self._held: dict[str, int] = {}  # tenant -> working set of its started programs
        self._total = 0
        # tenant -> program -> its waiting calls, in arrival order
        self._waiting: dict[str, OrderedDict[str, _Waiting]] = {}
        self._keys: set[str] = set()  # keys of the calls waiting here
        self._of: dict[str, int] = {}  # tenant -> calls waiting here

    # ---- views ---------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._keys)

    def size_of(self, tenant: str) -> int:
        return self._of.get(tenant, 0)

    def holds(self, call: CallRecord) -> bool:
        return call.key in self._keys

    def started(self, program_id: str) -> bool:
        return program_id in self._started

    def working_set(self, tenant: str | None = None) -> int:
        """Tokens the started programs (of `tenant`; None: of all) hold."""
        return self._total if tenant is None else self._held.get(tenant, 0)

    def waiting_calls(self) -> dict[str, int]:
        """Calls waiting here, per tenant (those it has)."""
        return dict(self._of)

    def waiting_programs(self, tenant: str) -> int:
        return len(self._waiting.get(tenant, ()))

    # ---- programs and calls -----------------------------------------------------------

    def admit(self, call: CallRecord) -> bool:
        """A call ready to queue: True if its program has started (queue it; its new prompt
        tokens join the working set), else it waits here (False)."""
        if not self.enabled:
            return True
        pid = call.program_id
        entry = self._started.get(pid)
        if entry is not None:
            self._grow(pid, entry, new_tokens(call, self._block))
            return True
        if self.capacity <= 0 and call.tenant not in self._waiting:  # no pool known yet
            self._start(pid, call.tenant, new_tokens(call, self._block))
            return True
        programs = self._waiting.get(call.tenant)
        if programs is None:
            programs = self._waiting[call.tenant] = OrderedDict()
        waiting = programs.get(pid)
        if waiting is None:
            waiting = programs[pid] = _Waiting()
        waiting.calls.append(call)
        waiting.tokens += new_tokens(call, self._block)
        self._keys.add(call.key)
        self._of[call.tenant] = self._of.get(call.tenant, 0) + 1
        return False

    def restored(self, program_id: str, tenant: str, tokens: int) -> None:
        """A program a restarted planner took back with calls already run: started."""
        if self.enabled and program_id not in self._started:
            self._start(program_id, tenant, tokens)

    def generated(self, program_id: str, tokens: int) -> None:
        """Output a finished call of the program generated (cached with its context)."""
        entry = self._started.get(program_id)
        if entry is not None and tokens > 0:
            self._grow(program_id, entry, tokens)

    def dormant(self, program_id: str) -> None:
        """The program has been idle long: its context is the engines' first to evict, so it
        no longer counts against its tenant; it stays started, and grows again if it calls."""
        entry = self._started.get(program_id)
        if entry is not None and entry.tokens:
            tenant, tokens = entry.tenant, entry.tokens
            entry.tokens = 0
            bump_count(self._held, tenant, -tokens)
            self._total -= tokens

    def end(self, program_id: str) -> None:
        """The program ended: its working set is free; calls still waiting are forgotten."""
        entry = self._started.pop(program_id, None)
        if entry is not None:
            tenant, tokens = entry.tenant, entry.tokens
            bump_count(self._held, tenant, -tokens)
            self._total -= tokens

    def forget(self, call: CallRecord) -> None:
        """A waiting call left (cancelled): its program starts without it."""
        if call.key not in self._keys:
            return
        self._keys.discard(call.key)
        bump_count(self._of, call.tenant, -1)
        programs = self._waiting[call.tenant]
        waiting = programs[call.program_id]
        waiting.calls.remove(call)
        if not waiting.calls:
            del programs[call.program_id]
            if not programs:
                del self._waiting[call.tenant]

    def release(self) -> list[CallRecord]:
        """The calls of the programs that may start now (they are started), tenants furthest
        below their share first, each tenant's in arrival order."""
        if not self._waiting:
            return []
        present = self._waiting.keys() | self._held.keys()
        weights = {t: self._weight(t) for t in present}
        total_w = sum(weights.values())
        cap = self.capacity
        share = {t: cap * w / total_w for t, w in weights.items()}
        out: list[CallRecord] = []
        backlog = self._backlog
        for tenant in sorted(self._waiting, key=lambda t: (self._held.get(t, 0) / weights[t], t)):
            programs = self._waiting[tenant]
            if backlog is None:
                queued, limit = 0, math.inf  # no bound: a backlog is never long enough
            else:
                queued, running = backlog(tenant)
                limit = max(1.0, running * self.backlog_ratio)
            while programs:
                pid, waiting = next(iter(programs.items()))
                held = self._held.get(tenant, 0)
                if held and cap > 0 and held + waiting.tokens > share[tenant] and (
                        self._total + waiting.tokens > cap
                        or queued >= limit):
                    break  # over its share, and no room or a backlog long enough
                queued += len(waiting.calls)
                del programs[pid]
                self._start(pid, tenant, waiting.tokens)
                for call in waiting.calls:
                    self._keys.discard(call.key)
                    bump_count(self._of, tenant, -1)
                    if call.state is CallState.QUEUED:
                        out.append(call)
            if not programs:
                del self._waiting[tenant]
        return out

    def _start(self, program_id: str, tenant: str, tokens: int) -> None:
        self._started[program_id] = _Started(tenant, tokens)
        self._held[tenant] = self._held.get(tenant, 0) + tokens
        self._total += tokens

    def _grow(self, program_id: str, entry: _Started, tokens: int) -> None:
        entry.tokens += tokens
        tenant = entry.tenant
        self._held[tenant] = self._held.get(tenant, 0) + tokens
        self._total += tokens
