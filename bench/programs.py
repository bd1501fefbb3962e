"""Programs drawn from a workload spec: arrivals, tenants, classes, call graphs and sizes.

Pure and deterministic: one seed gives the same programs. Each program draws from its own
generator (seeded by spec seed and program index), so asking for more programs leaves the
earlier ones unchanged.

Token ids are synthetic but consistent, so a radix cache sees exactly the sharing the
spec describes:
- a class's shared prefix has the same ids in every program (salted per tenant unless its
  scope is global);
- a root call's prompt: shared prefix + first_prompt_tokens new ids;
- `accumulate`: a later call's prompt = its first parent's prompt + every parent's output
  + step_prompt_tokens new ids (tree children thus share their parent's prompt);
- `fresh`: shared prefix + the parents' outputs (data along the DAG's edges) + new ids.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass

from bench.spec import ProgramClass, WorkloadSpec

MAX_CALLS = 1 << 12  # per program: keeps every call's token ids in its own range
_TOKENS_PER_CALL = 1 << 20


@dataclass(frozen=True)
class CallPlan:
    index: int
    parents: tuple[int, ...]
    new_tokens: int  # prompt tokens this call adds
    output_tokens: int
    think_s: float  # client-side gap after the last parent finishes (roots: 0)

    def new_ids(self, program_index: int) -> range:
        base = ((program_index + 1) * MAX_CALLS + self.index) * _TOKENS_PER_CALL
        return range(base, base + self.new_tokens)

    def first_output_id(self, program_index: int) -> int:
        return self.new_ids(program_index).start + _TOKENS_PER_CALL // 2


@dataclass(frozen=True)
class ProgramPlan:
    index: int
    program_id: str
    tenant: str
    klass: ProgramClass
    arrival: float
    calls: tuple[CallPlan, ...]
    deadline_s: float | None

    @property
    def output_tokens(self) -> int:
        return sum(c.output_tokens for c in self.calls)

    @property
    def salt(self) -> str:
        """The tenant's cache namespace, as the gateway's cache_salt: engines never share a
        prefix across tenants, not even a declared shared one (SGLang's cache_salt covers the
        whole prompt); the KV-reference index names its blocks alike for every tenant
        (`shared_tokens`), as the gateway does."""
        return f"tenant:{self.tenant}"

    @property
    def shared_tokens(self) -> int:
        """How many leading tokens of each of its prompts are an operator-declared shared
        prefix (a class's with scope global)."""
        sp = self.klass.shared_prefix
        return sp.tokens if sp is not None and sp.scope == "global" else 0


def shared_prefix_ids(klass: ProgramClass) -> range:
    sp = klass.shared_prefix
    if sp is None:
        return range(0)
    digest = int.from_bytes(hashlib.blake2b(sp.id.encode(), digest_size=5).digest(), "little")
    base = (1 << 60) + digest * _TOKENS_PER_CALL
    return range(base, base + sp.tokens)


def _graph(klass: ProgramClass, rng: random.Random) -> list[tuple[int, ...]]:
    """Parents of each call, in an order where parents come first."""
    if klass.shape == "chain":
        n = min(MAX_CALLS, klass.calls.sample_int(rng, 1))
        return [()] + [(i - 1,) for i in range(1, n)]
    if klass.shape == "fanout":
        width = klass.fanout
        return [()] * width + [tuple(range(width))]
    if klass.shape == "tree":
        parents: list[tuple[int, ...]] = [()]
        level = [0]
        for _ in range(klass.depth):
            nxt = []
            for node in level:
                for _ in range(klass.fanout):
                    if len(parents) >= MAX_CALLS:
                        return parents
                    parents.append((node,))
                    nxt.append(len(parents) - 1)
            level = nxt
        return parents
    prev: list[int] = []  # dag: each stage depends on all of the previous one
    parents = []
    for width in klass.stages:
        stage = []
        for _ in range(width):
            parents.append(tuple(prev))
            stage.append(len(parents) - 1)
        prev = stage
    return parents[:MAX_CALLS]


def _arrivals(spec: WorkloadSpec, rng: random.Random) -> Iterator[float]:
    """The arrival process, without end."""
    a = spec.arrival
    if a.process == "uniform":
        yield from (i / a.rate for i in itertools.count())
    if a.process == "burst":
        yield from ((i // a.burst_size) * a.burst_size / a.rate for i in itertools.count())
    t = 0.0
    while True:
        t += rng.expovariate(a.rate)
        yield t


def stream(spec: WorkloadSpec) -> Iterator[ProgramPlan]:
    """The workload's programs in arrival order, without end (steady-state runs take as many
    as arrive before they stop). Program i is the same whatever is taken after it."""
    arrivals = _arrivals(spec, random.Random(spec.seed))
    rng = random.Random(spec.seed + 0x5EED)  # its own stream: prefixes stay stable
    tenants = [t.name for t in spec.tenants]
    shares = [t.share for t in spec.tenants]
    weights = [c.weight for c in spec.classes]
    for i, arrival in enumerate(arrivals):
        tenant = rng.choices(tenants, shares)[0]
        klass = rng.choices(spec.classes, weights)[0]
        prng = random.Random(spec.seed * 1_000_003 + i)
        calls = []
        for index, parents in enumerate(_graph(klass, prng)):
            new = (klass.first_prompt_tokens if not parents else klass.step_prompt_tokens)
            calls.append(CallPlan(
                index=index, parents=parents,
                new_tokens=min(_TOKENS_PER_CALL // 2, new.sample_int(prng, 1 if not parents else 0)),
                # what the model writes, cut at the client's max_tokens as an engine does
                output_tokens=min(klass.max_tokens, _TOKENS_PER_CALL // 2,
                                  klass.output_tokens.sample_int(prng, 1)),
                think_s=klass.think_time_s.sample(prng) if parents else 0.0,
            ))
        deadline = None if klass.deadline_s is None else max(0.001, klass.deadline_s.sample(prng))
        yield ProgramPlan(i, f"p{i:06d}", tenant, klass, arrival, tuple(calls), deadline)


def generate(spec: WorkloadSpec) -> list[ProgramPlan]:
    """The spec's first `programs` programs (a finite run)."""
    return list(itertools.islice(stream(spec), spec.programs))
