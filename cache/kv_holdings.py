"""The KV-reference index held in memory: which worker's engine holds which prompt blocks.

What cache/kv_index.py keeps in Redis for the live mesh, for the cluster simulator, which
has no Redis: fed with the same engine KV events (BlockStored / BlockRemoved /
AllBlocksCleared, hashed by cache/block_hash.prefix_block_hashes), and answering the same
question, `longest_prefixes`, that the planner service asks before every admission.

The answer equals the Redis script's (the leading run of held blocks) because a worker's
held set is prefix-closed: a block hash names its whole prefix, and an engine's radix cache
evicts leaves first, so no block is held without the blocks before it. That lets a lookup
binary-search the prompt's blocks (block_hash.held_prefix_blocks): O(log n) per worker.

Pure and synchronous.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from cache.block_hash import held_prefix_blocks
from workers.kv_events import AllBlocksCleared, BlockRemoved, BlockStored, KvEvent


class KvHoldings:
    def __init__(self) -> None:
        self._held: dict[str, set[int]] = {}

    def apply(self, worker_id: str, events: Iterable[KvEvent]) -> None:
        """A worker's engine published these events, in order."""
        held = self._held.setdefault(worker_id, set())
        for event in events:
            if isinstance(event, BlockStored):
                held.update(event.block_hashes)
            elif isinstance(event, BlockRemoved):
                held.difference_update(event.block_hashes)
            elif isinstance(event, AllBlocksCleared):
                held.clear()

    def forget(self, worker_id: str) -> None:
        self._held.pop(worker_id, None)

    def size(self, worker_id: str) -> int:
        return len(self._held.get(worker_id, ()))

    def longest_prefix(self, worker_id: str, hashes: Sequence[int]) -> int:
        """How many leading blocks of `hashes` the worker's engine holds."""
        held = self._held.get(worker_id)
        return held_prefix_blocks(held, hashes) if held else 0

    def longest_prefixes(self, worker_ids: Sequence[str],
                         hashes: Sequence[int]) -> Mapping[str, int]:
        """Per worker, as KvIndex.longest_prefixes answers it. The commonest answers (none
        of the prompt held, or all of it) take one or two set lookups per worker, without a
        call (the cluster simulator asks this for 8 workers at every submission); a search
        tries the last one's answer first (workers holding the same shared prefix and
        nothing after it answer alike)."""
        held_of = self._held
        if not hashes:
            return dict.fromkeys(worker_ids, 0)
        first, last, n = hashes[0], hashes[-1], len(hashes)
        out: dict[str, int] = {}
        guess = 0
        for w in worker_ids:
            held = held_of.get(w)
            if not held or first not in held:
                out[w] = 0
            elif last in held:
                out[w] = n
            else:
                out[w] = guess = held_prefix_blocks(held, hashes, guess)
        return out
