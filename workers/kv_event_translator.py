"""From an engine's KV events to the KV-reference index's block hashes. Pure, clock-injected.

The engine names blocks by its own hashes, over token ids, without the tenant (SGLang's
cache_salt keeps tenants apart inside its radix tree, but mainline SGLang leaves it out of
the event hashes). The index names blocks by cache/block_hash.prefix_block_hashes: chained,
salted with the tenant, shared only over declared shared prefixes, in blocks of the index's
own size. The translator bridges the two:

- The worker tells it every request it sends (`expect`: the call's salt, how many leading
  tokens are a declared shared prefix, the prompt's token ids under the engine's tokenizer)
  and when it ends (`finish`; it is kept `linger_s` longer, since the engine may publish the
  request's blocks after answering).
- A BlockStored with no parent starts a chain: it is attributed to the oldest expected
  request whose prompt starts with its tokens and that has not yet had a chain attributed.
  A request whose tenant's chain with that first page was already held when it was sent is
  never a candidate: the engine reuses that chain rather than store it again.
  A BlockStored with a parent continues the parent's chains. Each engine block keeps, per
  chain it belongs to, the index hashes it completed, so a BlockRemoved names what to drop.
- Engine pages and index blocks need not be the same size: tokens are regrouped.

Unattributable blocks (no expected request matches; a parent the translator never saw,
e.g. stored before it subscribed) are counted and skipped: the index then under-claims,
which costs routing affinity, never isolation.

Mainline SGLang gives two tenants' identical blocks one event hash, so a block stored under
such a parent may be either tenant's. A chain is extended by a page only where an expected
request of its tenant (and shared prefix) has that page's tokens at that place in its
prompt: a tenant's chain through a first page both sent (a default system prompt) never
takes the other's continuation. It did (tenant review 2026-12-08 F3): tenant B's salted
hashes of A's private blocks were published as held, and routing, which names the worker
that served a call, told B block by block whether its guesses of A's prompt were right.
Blocks of a call's output (SGLang caches them at its end: a conversation's next turn
chains through them) are no prompt's: a block under a parent that no chain there can take
as a prompt's is taken by the chains that reached the end of a prompt of their tenant
(`past_prompt`). Another tenant's prompt block under a page both sent is some chain's
prompt there: the output rule does not give it to the first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from cache.block_hash import DEFAULT_BLOCK_SIZE, chain_seed, next_block_hash
from workers.kv_events import AllBlocksCleared, BlockRemoved, BlockStored, KvEvent


@dataclass(slots=True)
class _Expected:
    salt: str
    shared_blocks: int
    tokens: tuple[int, ...]
    attributed: bool = False
    finished_at: float | None = None


@dataclass(frozen=True, slots=True)
class _Chain:
    """One tenant's chain through an engine block: where it stands after that block."""
    salt: str
    shared_blocks: int
    blocks_done: int  # index blocks completed up to and including this engine block
    last_hash: int  # the index hash of the last completed block (chain_seed if none)
    pending: tuple[int, ...]  # tokens past the last completed index block
    completed: tuple[int, ...]  # index hashes this engine block completed
    # the block reaches the end of a prompt of its tenant: the blocks stored under it that
    # no prompt has there are that call's output
    past_prompt: bool = False


@dataclass
class Translation:
    stored: list[int] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)
    cleared: bool = False


@dataclass
class TranslatorStats:
    blocks_stored: int = 0
    blocks_removed: int = 0
    unattributed: int = 0  # engine blocks no expected request or known parent explains
    # engine blocks under a known parent that no request of its chains' tenants sent nor
    # answered with: another tenant's prompt under a page both sent (not indexed)
    unsent: int = 0
    clears: int = 0


class KvEventTranslator:
    def __init__(self, block_size: int = DEFAULT_BLOCK_SIZE, linger_s: float = 30.0,
                 max_expected: int = 4096) -> None:
        if block_size < 1:
            raise ValueError("block_size must be positive")
        self.block_size = block_size
        self.linger_s = linger_s
        self.max_expected = max_expected
        self.stats = TranslatorStats()
        self._expected: OrderedDict[str, _Expected] = OrderedDict()  # rid -> request, oldest first
        # the same requests by (salt, shared blocks): which may have sent a page (`_next`)
        self._by_chain: dict[tuple[str, int], dict[str, _Expected]] = {}
        # engine hash -> the chains through it, one per (salt, shared blocks); a tuple, not a
        # dict: almost always one chain, and this map is as large as the engine's KV pool
        self._blocks: dict[int, tuple[_Chain, ...]] = {}
        # held chain starts: (salt, shared blocks, first page) -> engine hash, and back
        self._roots: dict[tuple[str, int, tuple[int, ...]], int] = {}
        self._root_keys: dict[int, list[tuple[str, int, tuple[int, ...]]]] = {}
        self._page_size = 0  # the engine's, as its events report it
        self._expired_at = float("-inf")
        # index hash -> engine pages that completed it: where index blocks end inside engine
        # pages, sibling pages can complete the same index block; it goes when the last does
        self._refs: dict[int, int] = {}

    @property
    def engine_blocks(self) -> int:
        return len(self._blocks)

    @property
    def index_blocks(self) -> int:
        """How many index blocks the engine holds, as far as the events told."""
        return len(self._refs)

    def held_hashes(self) -> list[int]:
        """Every index hash the engine holds, as far as the events told (for a resync)."""
        return sorted(self._refs)

    def expect(self, rid: str, salt: str, shared_tokens: int, tokens: Sequence[int],
               now: float) -> None:
        self._expire(now)
        exp = _Expected(salt, shared_tokens // self.block_size, tuple(tokens))
        page = exp.tokens[:self._page_size]
        if self._page_size and len(page) == self._page_size and \
                (salt, exp.shared_blocks, page) in self._roots:
            exp.attributed = True  # the engine holds its chain's start: it will not store it
        self._forget(rid)
        self._expected[rid] = exp
        self._by_chain.setdefault((salt, exp.shared_blocks), {})[rid] = exp
        while len(self._expected) > self.max_expected:
            self._forget(next(iter(self._expected)))

    def _forget(self, rid: str) -> None:
        exp = self._expected.pop(rid, None)
        if exp is not None:
            key = (exp.salt, exp.shared_blocks)
            same = self._by_chain.get(key, {})
            same.pop(rid, None)
            if not same:
                self._by_chain.pop(key, None)

    def finish(self, rid: str, now: float) -> None:
        exp = self._expected.get(rid)
        if exp is not None and exp.finished_at is None:
            exp.finished_at = now

    def _expire(self, now: float) -> None:
        if now - self._expired_at < 1.0:  # a sweep at most once a second, not once per call
            return
        self._expired_at = now
        gone = [rid for rid, e in self._expected.items()
                if e.finished_at is not None and now - e.finished_at > self.linger_s]
        for rid in gone:
            self._forget(rid)

    def apply(self, events: Sequence[KvEvent], now: float) -> Translation:
        self._expire(now)
        out = Translation()
        for event in events:
            if isinstance(event, BlockStored):
                self._stored(event, out)
            elif isinstance(event, BlockRemoved):
                self._removed(event, out)
            elif isinstance(event, AllBlocksCleared):
                self.reset()
                self.stats.clears += 1
                out = Translation(cleared=True)  # what came before in this batch is gone too
        return out

    def reset(self) -> None:
        """Forget every engine block (the engine cleared its cache, restarted, or events
        were lost). The requests expected so far were judged against the blocks forgotten
        (a request whose first page the old engine held was taken to store no chain start):
        the engine stores everything again, so each may start a chain again. Without this,
        a restarted engine's chains of a prefix its predecessor held were never indexed
        (workers review 2026-12-05 F4)."""
        self._blocks.clear()
        self._refs.clear()
        self._roots.clear()
        self._root_keys.clear()
        for exp in self._expected.values():
            exp.attributed = False

    def _root_chains(self, engine_hash: int, page: tuple[int, ...]) -> list[_Chain]:
        for exp in self._expected.values():
            key = (exp.salt, exp.shared_blocks, page)
            if exp.attributed or key in self._roots or exp.tokens[:len(page)] != page:
                continue
            exp.attributed = True
            self._roots[key] = engine_hash
            self._root_keys.setdefault(engine_hash, []).append(key)
            return [_Chain(exp.salt, exp.shared_blocks, 0,
                           chain_seed(exp.salt, exp.shared_blocks), (), ())]
        return []

    def _stored(self, event: BlockStored, out: Translation) -> None:
        n = len(event.block_hashes)
        self.stats.blocks_stored += n
        size = event.block_size or (len(event.token_ids) // n if n else 0)
        if n == 0 or size < 1 or len(event.token_ids) < size * (n - 1):
            self.stats.unattributed += n
            return
        self._page_size = size
        if event.parent_block_hash is None:
            chains = self._root_chains(event.block_hashes[0], tuple(event.token_ids[:size]))
        else:
            chains = list(self._blocks.get(event.parent_block_hash, ()))
        if not chains:
            self.stats.unattributed += n
            return
        # the requests each chain may be following (narrowed page by page: an event costs
        # its pages and its tenants' requests, not their product: diff review 2026-12-08)
        follows = [list(self._by_chain.get((c.salt, c.shared_blocks), {}).values())
                   for c in chains]
        for i, engine_hash in enumerate(event.block_hashes):
            page = tuple(event.token_ids[i * size:(i + 1) * size])
            chains, follows = self._next(chains, follows, page)
            if not chains:  # nobody's prompt, nor any call's output: another tenant's
                self.stats.unsent += n - i
                return
            held = self._blocks.get(engine_hash, ())
            for c in chains:
                same = next((j for j, o in enumerate(held) if c.salt == o.salt
                             and c.shared_blocks == o.shared_blocks), None)
                if same is not None:  # the same page reported again: already counted
                    if c.past_prompt and not held[same].past_prompt:
                        held = (*held[:same], replace(held[same], past_prompt=True),
                                *held[same + 1:])
                    continue
                held += (c,)
                for h in c.completed:
                    self._refs[h] = self._refs.get(h, 0) + 1
                    if self._refs[h] == 1:
                        out.stored.append(h)
            self._blocks[engine_hash] = held

    def _next(self, chains: list[_Chain], follows: list[list[_Expected]],
              page: tuple[int, ...]) -> tuple[list[_Chain], list[list[_Expected]]]:
        """The chains `page` extends, and the requests each may still be following. A
        chain takes a page where a request of its tenant (and shared prefix) has it in its
        prompt at that place (or the prompt's end, in a page that passes it); where no
        chain through the parent does, the page is a call's output, taken by the chains
        that reached the end of a prompt (see the module's docstring)."""
        sent: list[_Chain] = []
        still: list[list[_Expected]] = []
        for chain, requests in zip(chains, follows, strict=True):
            at = chain.blocks_done * self.block_size + len(chain.pending)
            end = at + len(page)
            kept = [e for e in requests
                    if (part := e.tokens[at:end]) and part == page[:len(part)]]
            if kept:
                sent.append(self._extend(chain, page, any(len(e.tokens) <= end for e in kept)))
                still.append([e for e in kept if len(e.tokens) > end])
        if sent:
            return sent, still
        output = [self._extend(c, page, True) for c in chains if c.past_prompt]
        return output, [[] for _ in output]

    def _extend(self, chain: _Chain, page: Sequence[int], past_prompt: bool = False) -> _Chain:
        pending = chain.pending + tuple(page)
        bs = self.block_size
        done, last, completed = chain.blocks_done, chain.last_hash, []
        while len(pending) >= bs:
            last = next_block_hash(last, done, pending[:bs], chain.salt, chain.shared_blocks)
            completed.append(last)
            done += 1
            pending = pending[bs:]
        return _Chain(chain.salt, chain.shared_blocks, done, last, pending, tuple(completed),
                      past_prompt)

    def _removed(self, event: BlockRemoved, out: Translation) -> None:
        self.stats.blocks_removed += len(event.block_hashes)
        for engine_hash in event.block_hashes:
            for c in self._blocks.pop(engine_hash, ()):
                for h in c.completed:
                    left = self._refs.get(h, 0) - 1
                    if left > 0:
                        self._refs[h] = left
                    elif h in self._refs:
                        del self._refs[h]
                        out.removed.append(h)
            for key in self._root_keys.pop(engine_hash, ()):
                self._roots.pop(key, None)
