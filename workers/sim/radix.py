"""A token-level radix prefix cache and KV pool, modelled on SGLang's RadixCache.

- Keys are token sequences; the engine prepends one salt token (SGLang's cache_salt), so
  requests with different salts never share a prefix. The tree holds them packed
  (workers/sim/token_ids.py: slicing and comparing edges is memcpy and a word loop, no
  Python int per token); keys given in another form are packed first.
- `match_prefix` finds the longest cached prefix (splitting an edge where the match ends);
  `insert` adds a sequence; `lock`/`unlock` reference a node and its ancestors for a
  running request (SGLang's lock_ref); referenced nodes are never evicted.
- The KV pool holds `capacity` tokens: the tree's tokens plus tokens reserved by running
  requests and not yet in the tree. `alloc` evicts least-recently-used unreferenced leaves
  to make room.
- An outbox of KV events (BlockStored / BlockRemoved / AllBlocksCleared, named as SGLang's
  KV events) describes every complete block of `block_size` tokens entering or leaving.
  A BlockStored's token_ids are a packed slice of the key (no Python int per token; the
  wire encoding, workers/kv_events.py, lists them).
"""

from __future__ import annotations

import heapq
import itertools
from array import array
from collections.abc import Sequence

from cache.block_hash import chain_hashes, join_salt, next_block_hash
from workers.kv_events import AllBlocksCleared, BlockRemoved, BlockStored, KvEvent
from workers.sim.token_ids import pack, unsigned

_ids = itertools.count()



def _chain(parent: int, tokens: Sequence[int], index: int, shared_blocks: int, salt: str,
           bs: int) -> list[int]:
    """The hashes of the complete blocks of `tokens`, blocks `index`... of a key, given the
    hash of block index-1 (or the seed): chain_hashes, with `salt` joining the chain at block
    `shared_blocks` (cache.block_hash.extend_prefix_block_hashes's rule)."""
    split = (shared_blocks - index) * bs
    if shared_blocks and 0 <= split < len(tokens) - bs + 1:
        head = chain_hashes(parent, tokens[:split], bs)
        return head + chain_hashes(join_salt(head[-1] if head else parent, salt),
                                   tokens[split:], bs)
    return chain_hashes(parent, tokens, bs)

class Node:
    __slots__ = ("block_ends", "children", "edge", "hashes", "id", "last_access", "parent", "ref",
                 "start")

    def __init__(self, edge: array[int], start: int, parent: Node | None, now: float) -> None:
        self.edge = edge  # the tokens on the edge from its parent, packed
        self.start = start  # position of edge[0] in the full sequence
        self.parent = parent
        self.children: dict[int, Node] = {}
        self.ref = 0
        self.last_access = now
        # The blocks ending inside this node: their end positions (a regular stride) and hashes.
        self.block_ends = range(0)
        self.hashes: list[int] = []
        self.id = next(_ids)

    @property
    def end(self) -> int:
        return self.start + len(self.edge)

    @property
    def blocks(self) -> list[tuple[int, int]]:
        """(end position, block hash) of each block ending inside this node (inspection)."""
        return list(zip(self.block_ends, self.hashes, strict=True))

    @property
    def key(self) -> tuple[int, ...]:
        """The edge's tokens as a tuple (for inspection: the tree works on `edge`)."""
        return tuple(self.edge)


def _common_len(edge: array[int], key: array[int], pos: int) -> int:
    """Length of the common prefix of edge and key[pos:]."""
    n = min(len(edge), len(key) - pos)
    if key[pos:pos + n] == edge[:n]:
        return n
    lo, step = 0, 32
    while edge[lo:lo + step] == key[pos + lo:pos + lo + step]:
        lo += step
    while edge[lo] == key[pos + lo]:
        lo += 1
    return lo


class CacheFull(Exception):
    """The pool cannot make room: everything left is referenced by running requests."""


class RadixCache:
    def __init__(self, capacity: int, block_size: int = 16, *, hash_blocks: bool = True) -> None:
        """hash_blocks=False skips block hashes and KV events (the cluster simulator has no
        KV-event consumer)."""
        if capacity < 1 or block_size < 1:
            raise ValueError("capacity and block_size must be positive")
        self.capacity = capacity
        self.block_size = block_size
        self.root = Node(pack(()), 0, None, 0.0)
        self.root.ref = 1  # never evicted
        self.size = 0  # tokens in the tree
        self.evictable = 0  # tokens in unreferenced nodes
        self.reserved = 0  # tokens held by running requests outside the tree
        # Eviction candidates: (last_access, id, node) for every unreferenced leaf, kept as a
        # heap across calls; entries go stale when the node is touched, locked, gains a child
        # or is evicted, and are skipped when popped (`_evictable_leaf`).
        self._lru: list[tuple[float, int, int, Node]] = []
        self._pushes = itertools.count()  # tells duplicate entries of one node apart
        self._leaf_count = 0
        self._events: list[KvEvent] = []
        self._hash_blocks = hash_blocks

    # ---- pool ------------------------------------------------------------------------

    @property
    def available(self) -> int:
        return self.capacity - self.size - self.reserved

    def can_alloc(self, n: int) -> bool:
        return n <= self.available + self.evictable

    def alloc(self, n: int) -> None:
        """Reserves n tokens for a running request, evicting LRU leaves if needed."""
        if n > self.available:
            self.evict(n - self.available)
        if n > self.available:
            raise CacheFull(f"need {n} tokens, {self.available} free and nothing evictable")
        self.reserved += n

    def free(self, n: int) -> None:
        if n > self.reserved:
            raise ValueError(f"freeing {n} tokens but only {self.reserved} reserved")
        self.reserved -= n

    # ---- tree ------------------------------------------------------------------------

    def _split(self, node: Node, offset: int) -> Node:
        """Splits node's edge after `offset` tokens; returns the new upper node."""
        assert node.parent is not None and 0 < offset < len(node.edge)
        upper = Node(node.edge[:offset], node.start, node.parent, node.last_access)
        upper.ref = node.ref
        node.parent.children[node.edge[0]] = upper
        node.edge = node.edge[offset:]
        node.start += offset
        node.parent = upper
        upper.children[node.edge[0]] = node
        cut = node.start
        ends = node.block_ends
        if ends:  # those ending at or before the cut go up
            k = max(0, min(len(ends), (cut - ends.start) // ends.step + 1))
            upper.block_ends, node.block_ends = ends[:k], ends[k:]
            upper.hashes, node.hashes = node.hashes[:k], node.hashes[k:]
        return upper

    def _walk(self, key: Sequence[int], now: float, start: Node | None = None) -> tuple[int, Node]:
        """Follows key down the tree, touching (last_access) every node on its path.

        `start`, a node whose path is a prefix of key (e.g. a locked node of the request
        inserting), skips comparing that prefix again: the result is the same.
        """
        key = pack(key)
        if start is None or start is self.root:
            node, pos = self.root, 0
        else:
            node, pos = start, start.end
            up = node.parent
            while up is not None:
                up.last_access = now
                up = up.parent
        node.last_access = now
        end = len(key)
        while pos < end:
            child = node.children.get(key[pos])
            if child is None:
                break
            edge = child.edge
            n = len(edge)
            if key[pos:pos + n] != edge:
                n = _common_len(edge, key, pos)
                if n < len(edge):
                    child = self._split(child, n)
            child.last_access = now
            node, pos = child, pos + n
        return pos, node

    def _touched(self, node: Node, lock: bool) -> None:
        """After a walk that ends at `node` (its last_access now new): locks it, or records
        it for eviction again if it is an unreferenced leaf. A node locked needs no record:
        when it is next an unreferenced leaf, `unlock` or `evict` records it."""
        if lock:
            self.lock(node)
        elif not node.children and node.ref == 0 and node is not self.root:
            self._candidate(node)

    def match_prefix(self, key: Sequence[int], now: float, *,
                     lock: bool = False) -> tuple[int, Node]:
        """Length of the longest cached prefix of key, and the node where it ends (locked
        if `lock`, as `lock(node)` would)."""
        pos, node = self._walk(key, now)
        self._touched(node, lock)
        return pos, node

    def insert(self, key: Sequence[int], now: float, seed: int = 0,
               start: Node | None = None, known: Sequence[int] = (), *,
               lock: bool = False, shared_blocks: int = 0, salt: str = "") -> tuple[int, Node]:
        """Adds key to the tree (its pool space must already be reserved or free).

        Position 0 of a key is the salt token; blocks cover key[1:] and their hashes chain
        from `seed` (cache.block_hash.salt_seed of the salt), so they equal
        cache.block_hash.block_hashes(key[1:], block_size, salt). Only the new blocks are
        hashed: the chain continues from the hash stored on the cached prefix.
        Returns the number of tokens newly added and the node where key ends.
        `start`: a node whose path is a prefix of key (see _walk); the result is the same.
        `known`: the hashes of the first blocks of key[1:] if the caller has them (e.g. a
        prompt's, as the gateway computes them); used instead of hashing those blocks again,
        after checking the first one used against the chain.
        Tokens after the salt token must not be negative: blocks are hashed from an unsigned
        view of the key (token_ids.unsigned), without checking each.
        `lock`: the node returned is locked, as `lock(node)` would.
        `shared_blocks`, `salt`: the first blocks lie in a declared shared prefix, hashed as
        cache.block_hash.prefix_block_hashes does (`seed` then the shared salt's, the salt
        joining the chain after them).
        """
        key = pack(key)
        pos, node = self._walk(key, now, start)
        if pos == len(key):
            self._touched(node, lock)
            return 0, node
        leaf = Node(key[pos:], pos, node, now)  # node, no longer a leaf, needs no record
        added = len(leaf.edge)
        if node.children or node is self.root:
            self._leaf_count += 1
        node.children[leaf.edge[0]] = leaf
        self.size += added
        self.evictable += added
        self._touched(leaf, lock)
        if not self._hash_blocks:
            return added, leaf
        bs = self.block_size
        k = (pos - 1) // bs if pos > 1 else 0  # complete blocks before pos (max(0, ...))
        parent = seed if k == 0 else self._block_hash_ending(node, 1 + k * bs)
        first = 1 + (k + 1) * bs  # end of the first block ending in the new leaf (> pos)
        if first > len(key):
            return added, leaf
        parent_of_first = None if first == 1 + bs else parent
        # blocks k, k+1, ... (counted in key[1:]) end at first, first + bs, ...
        count = (len(key) - first) // bs + 1
        stored = list(known[k:k + count])
        with unsigned(key) as ukey:  # released on an error too (the key may grow later)
            if stored and next_block_hash(parent, k, ukey[first - bs:first], salt,
                                          shared_blocks) != stored[0]:
                raise ValueError("known block hashes differ from the chain (salt, block size?)")
            if len(stored) < count:
                rest = first - bs + len(stored) * bs
                stored += _chain(stored[-1] if stored else parent, ukey[rest:first - bs + count * bs],
                                 k + len(stored), shared_blocks, salt, bs)
        leaf.block_ends, leaf.hashes = range(first, first + count * bs, bs), stored
        tokens = key[first - bs:first - bs + count * bs]  # packed (the wire form takes a list)
        self._events.append(BlockStored(tuple(stored), parent_of_first, tokens, bs))  # type: ignore[arg-type]
        return added, leaf

    def _block_hash_ending(self, node: Node, end: int) -> int:
        n: Node | None = node
        while n is not None:
            if end in n.block_ends:
                return n.hashes[n.block_ends.index(end)]
            n = n.parent
        raise AssertionError(f"no cached block ends at {end}")

    def lock(self, node: Node) -> None:
        while node is not None and node is not self.root:
            if node.ref == 0:
                self.evictable -= len(node.edge)
            node.ref += 1
            node = node.parent  # type: ignore[assignment]

    def unlock(self, node: Node) -> None:
        leaf = node if node is not self.root and node.ref == 1 and not node.children else None
        while node is not None and node is not self.root:
            if node.ref <= 0:
                raise ValueError("unlock of an unreferenced node")
            node.ref -= 1
            if node.ref == 0:
                self.evictable += len(node.edge)
            node = node.parent  # type: ignore[assignment]
        if leaf is not None:
            self._candidate(leaf)  # now an unreferenced leaf

    def _candidate(self, leaf: Node) -> None:
        """Records an unreferenced leaf (at its current last_access) for eviction."""
        lru = self._lru
        heapq.heappush(lru, (leaf.last_access, leaf.id, next(self._pushes), leaf))
        if len(lru) > 2 * self._leaf_count + 64:  # mostly stale: compact
            self._lru = [e for e in lru if (n := e[3]).ref == 0 and not n.children
                         and n.parent is not None and n.last_access == e[0]]
            heapq.heapify(self._lru)

    @staticmethod
    def _evictable_leaf(entry: tuple[float, int, int, Node]) -> bool:
        t, _, _, node = entry
        return (node.ref == 0 and not node.children and node.parent is not None
                and node.last_access == t)

    def evict(self, n: int) -> int:
        """Frees at least n tokens from unreferenced leaves, least recently used first."""
        lru = self._lru
        freed = 0
        while freed < n and lru:
            entry = heapq.heappop(lru)
            if not self._evictable_leaf(entry):
                continue  # stale
            leaf = entry[3]
            parent = leaf.parent
            assert parent is not None
            del parent.children[leaf.edge[0]]
            leaf.parent = None  # evicted: any entry left for it is stale
            n_tokens = len(leaf.edge)
            freed += n_tokens
            self.size -= n_tokens
            self.evictable -= n_tokens
            if leaf.hashes:
                self._events.append(BlockRemoved(tuple(leaf.hashes)))
            if parent is not self.root and not parent.children:
                if parent.ref == 0:
                    heapq.heappush(lru, (parent.last_access, parent.id, next(self._pushes), parent))
            else:
                self._leaf_count -= 1
        return freed

    def reset(self) -> None:
        """Drops every unreferenced entry (SGLang refuses /flush_cache while requests run)."""
        self.root.children.clear()
        self._lru.clear()
        self._leaf_count = 0
        self.size = self.evictable = 0
        self._events.append(AllBlocksCleared())

    def _nodes(self) -> list[Node]:
        out, stack = [], list(self.root.children.values())
        while stack:
            node = stack.pop()
            out.append(node)
            stack.extend(node.children.values())
        return out

    def cached_blocks(self) -> set[int]:
        """Hashes of every block in the tree (for checking the event stream)."""
        return {h for node in self._nodes() for h in node.hashes}

    def take_events(self) -> list[KvEvent]:
        events, self._events = self._events, []
        return events
