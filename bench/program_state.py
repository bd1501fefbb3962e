"""The cluster simulator's state of one program in flight (bench/cluster.py): the token ids
of its calls' prompts, outputs and contexts, their block hashes, and which children each
call still waits to make ready."""

from __future__ import annotations

from array import array

from bench.programs import ProgramPlan
from bench.sim_run import ProgramOutcome
from planner.core.model import work_of
from workers.sim.text import FixedLengthDecoder


class ProgramState:
    __slots__ = (
        "contexts",
        "decoders",
        "done",
        "hashes",
        "outcome",
        "outputs",
        "pending_children",
        "plan",
        "prompts",
        "remaining_work",
        "unready_children",
    )

    def __init__(self, plan: ProgramPlan, outcome: ProgramOutcome) -> None:
        self.plan = plan
        self.outcome = outcome
        # Token ids packed (workers/sim/token_ids.py), never changed in place: they are shared.
        self.prompts: dict[int, array[int]] = {}  # ready, not yet dispatched
        self.decoders: dict[int, FixedLengthDecoder] = {}  # ready, not yet dispatched
        self.outputs: dict[int, array[int]] = {}  # finished
        # An `accumulate` call with children: its prompt then its whole output (what its
        # engine's KV holds when it finishes; its children's prompts start with it).
        self.contexts: dict[int, array[int]] = {}
        # Block hashes of each call's context (of its prompt if it has none), the engine's
        # too: nothing is hashed twice. Both dropped once its engine and children have them.
        self.hashes: dict[int, list[int]] = {}
        self.done = 0
        self.remaining_work = sum(work_of(c.output_tokens, c.new_tokens) for c in plan.calls)
        children: dict[int, list[int]] = {}
        for c in plan.calls:
            for p in c.parents:
                children.setdefault(p, []).append(c.index)
        self.pending_children = children
        self.unready_children = {p: len(c) for p, c in children.items()}


