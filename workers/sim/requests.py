"""What the sim engine core (workers/sim/scheduler.py) is given and gives back. SIMULATED.

EngineParams: its sizes and switches (SGLang's server arguments that matter here); Req: a
request with its state in the engine; EngineEvent: what a step reports about a request.
"""

from __future__ import annotations

import enum
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field

from cache.block_hash import chain_seed, salt_seed
from workers.sim.radix import Node
from workers.sim.text import Decoder, FixedLengthDecoder
from workers.sim.token_ids import pack, packed


def _salt_token(seed: int) -> int:
    """The token every key of the salt starts with: 2**64 - 1 - seed / 4 (the bits of
    -1 - seed / 4, which it was while keys were tuples; hashes and results unchanged)."""
    return (1 << 64) - 1 - (seed >> 2)


@dataclass(frozen=True)
class EngineParams:
    max_total_tokens: int
    chunked_prefill_size: int = 8192
    max_running_requests: int = 256
    schedule_policy: str = "fcfs"  # fcfs | lpm
    enable_priority: bool = True
    preemption_threshold: int = 10  # SGLang --priority-scheduling-preemption-threshold
    block_size: int = 16
    fast_forward: bool = False
    kv_events: bool = True  # block hashes and KV events (off in the cluster simulator)
    stream_events: bool = True  # an event per decode step; False: only finish events

    def __post_init__(self) -> None:
        if self.schedule_policy not in ("fcfs", "lpm"):
            raise ValueError(f"schedule_policy must be fcfs or lpm, got {self.schedule_policy!r}")
        if min(self.max_total_tokens, self.chunked_prefill_size, self.max_running_requests) < 1:
            raise ValueError("engine sizes must be positive")


class ReqState(enum.Enum):
    WAITING = "waiting"
    PREFILL = "prefill"
    RUNNING = "running"
    FINISHED = "finished"


@dataclass(eq=False, slots=True)
class Req:
    rid: str
    prompt_ids: Sequence[int]
    decoder: Decoder | FixedLengthDecoder
    priority: int = 0
    salt: str = ""
    arrival: float = 0.0
    # when it last entered the waiting queue (its arrival, or its retraction): the queue's
    # order within a priority, as SGLang's wait_queue_entry_time
    queued_at: float = 0.0
    state: ReqState = ReqState.WAITING
    cached_tokens: int = 0  # reported: prompt tokens served from cache at first admission
    done_tokens: int = 0  # tokens of `key` whose KV exists (cached or computed)
    reserved: int = 0  # pool tokens this request holds outside the tree
    node: Node | None = None  # locked radix node
    admitted_once: bool = False
    retractions: int = 0
    first_token_at: float | None = None
    key: Sequence[int] = field(default=())  # full_key() as of admission
    # Hashes of the prompt's complete blocks (cache.block_hash.block_hashes of prompt_ids,
    # block_size and salt as the engine's), if the caller has them: the cache then does not
    # hash those blocks again. A caller that knows the output to come (a FixedLengthDecoder's)
    # may give those of the prompt followed by it: the output's blocks are then not hashed.
    block_hashes: Sequence[int] = field(default=(), repr=False)
    # Blocks of the prompt inside an operator-declared shared prefix: the KV events name them
    # as the KV-reference index does (cache.block_hash.prefix_block_hashes, shared_tokens),
    # while the radix tree keeps them under the request's salt, as SGLang's cache_salt does
    # (a live worker's translator maps the engine's events so; the simulator has none).
    shared_blocks: int = 0
    # engine bookkeeping
    _seed: int | None = field(default=None, init=False, repr=False)
    _prefix: array[int] | None = field(default=None, init=False, repr=False)
    _full: array[int] | None = field(default=None, init=False, repr=False)  # full_key, as of:
    _full_n: int = field(default=-1, init=False, repr=False)  # ... this many output tokens
    _join: int | None = field(default=None, init=False, repr=False)  # while running: join id
    _lazy_base: int = field(default=0, init=False, repr=False)  # context minus counter steps
    _reported: int = field(default=0, init=False, repr=False)  # tokens last in take_progress
    # when it last joined the engine's running list (a counter): that list's order
    _ran: int = field(default=0, init=False, repr=False)

    def salt_seed(self) -> int:
        if self._seed is None:
            self._seed = salt_seed(self.salt)
        return self._seed

    def hash_seed(self) -> int:
        """The parent of the KV events' block 0 (the salt's seed, or the shared salt's)."""
        return self.salt_seed() if not self.shared_blocks else chain_seed(self.salt,
                                                                          self.shared_blocks)

    def full_key(self) -> array[int]:
        """Salt token, prompt, then output so far: what this request's KV holds (packed:
        workers/sim/token_ids.py)."""
        if self._prefix is None:
            self._prefix = packed(_salt_token(self.salt_seed())) + pack(self.prompt_ids)
        d = self.decoder
        if type(d) is FixedLengthDecoder:  # its output is fixed by its length: build it once
            n, full = d.completion_tokens, self._full
            if n != self._full_n or full is None:
                full = self._full = self._prefix + d.output_key() if n else self._prefix
                self._full_n = n
            return full
        return self._prefix + pack(d.output_ids)


@dataclass(frozen=True, slots=True)
class EngineEvent:
    rid: str
    time: float
    delta: str = ""
    new_tokens: int = 0
    finish_reason: dict[str, object] | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    e2e_latency: float = 0.0
    first_token_at: float | None = None
    output_ids: Sequence[int] = ()  # a FixedLengthDecoder's packed (workers/sim/token_ids.py)
    text: str = ""

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None
