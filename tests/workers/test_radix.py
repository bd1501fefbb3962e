"""Property tests of the sim engine's radix cache against naive references (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cache.block_hash import block_hashes, chain_seed, prefix_block_hashes, salt_seed
from workers.sim.radix import AllBlocksCleared, BlockRemoved, BlockStored, RadixCache

BS = 4
SALT = (1 << 64) - 7  # the salt token the engine prepends (above any other id here)
SEED = salt_seed("s")
# Small alphabets and lengths make shared prefixes, splits and evictions common.
seqs = st.lists(st.integers(0, 3), min_size=0, max_size=24).map(lambda s: (SALT, *s))


def hashes(key: tuple[int, ...]) -> list[int]:
    return block_hashes(key[1:], BS, salt="s")


def naive_match(stored: list[tuple[int, ...]], key: tuple[int, ...]) -> int:
    best = 0
    for s in stored:
        n = 0
        while n < min(len(s), len(key)) and s[n] == key[n]:
            n += 1
        best = max(best, n)
    return best


def paths(cache: RadixCache) -> list[tuple[int, ...]]:
    out = []

    def walk(node, prefix):  # type: ignore[no-untyped-def]
        prefix = prefix + node.key
        if not node.children and prefix:
            out.append(prefix)
        for c in node.children.values():
            walk(c, prefix)

    walk(cache.root, ())
    return out


def check_invariants(cache: RadixCache, event_blocks: set[int]) -> None:
    nodes = cache._nodes()
    assert cache.size == sum(len(n.key) for n in nodes)
    assert cache.evictable == sum(len(n.key) for n in nodes if n.ref == 0)
    assert cache.size + cache.reserved <= cache.capacity
    for n in nodes:  # a referenced node's ancestors are referenced too
        if n.ref > 0 and n.parent is not cache.root:
            assert n.parent.ref >= n.ref
    expected = {h for p in paths(cache) for h in hashes(p)}
    assert cache.cached_blocks() == expected == event_blocks


def replay(cache: RadixCache, blocks: set[int]) -> set[int]:
    for e in cache.take_events():
        if isinstance(e, BlockStored):
            assert not blocks & set(e.block_hashes)
            blocks |= set(e.block_hashes)
        elif isinstance(e, BlockRemoved):
            assert set(e.block_hashes) <= blocks
            blocks -= set(e.block_hashes)
        elif isinstance(e, AllBlocksCleared):
            blocks = set()
    return blocks


@settings(max_examples=200, deadline=None)
@given(st.lists(seqs, max_size=12), st.lists(seqs, max_size=8))
def test_match_lengths_equal_the_naive_longest_common_prefix(inserts, queries) -> None:  # type: ignore[no-untyped-def]
    cache = RadixCache(capacity=10_000, block_size=BS)
    for t, key in enumerate(inserts):
        cache.insert(key, float(t), SEED)
    for key in [*queries, *inserts]:
        n, _ = cache.match_prefix(key, 99.0)
        assert n == naive_match(inserts, key)
    assert sorted(set(paths(cache))) == sorted(
        {s for s in inserts if not any(o != s and o[:len(s)] == s for o in inserts)})


ops = st.lists(
    st.one_of(
        st.tuples(st.just("insert"), seqs),
        st.tuples(st.just("lock"), seqs),
        st.tuples(st.just("unlock"), st.integers(0, 10)),
        st.tuples(st.just("evict"), st.integers(1, 30)),
        st.tuples(st.just("alloc"), st.integers(1, 20)),
        st.tuples(st.just("free"), st.integers(1, 20)),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(st.integers(8, 60), ops)
def test_capacity_locks_and_events_hold_under_eviction(capacity: int, script) -> None:  # type: ignore[no-untyped-def]
    cache = RadixCache(capacity=capacity, block_size=BS)
    locked: list[tuple[tuple[int, ...], object]] = []
    blocks: set[int] = set()
    inserted: list[tuple[int, ...]] = []
    for t, (op, arg) in enumerate(script):
        now = float(t)
        if op in ("insert", "lock"):
            matched, prefix = cache.match_prefix(arg, now)
            need = len(arg) - matched
            cache.lock(prefix)  # as the engine does: hold the matched prefix while allocating
            if not cache.can_alloc(need):
                cache.unlock(prefix)
                continue
            cache.alloc(need)  # a running request's KV before it enters the tree
            cache.free(need)  # ... handed back when the tokens move into the tree
            added, node = cache.insert(arg, now, SEED)
            cache.unlock(prefix)
            assert added == need
            inserted.append(arg)
            if op == "lock":
                cache.lock(node)
                locked.append((arg, node))
        elif op == "unlock" and locked:
            _, node = locked.pop(arg % len(locked))
            cache.unlock(node)
        elif op == "evict":
            cache.evict(arg)
        elif op == "alloc" and cache.can_alloc(arg):
            cache.alloc(arg)
        elif op == "free":
            cache.free(min(arg, cache.reserved))
        blocks = replay(cache, blocks)
        check_invariants(cache, blocks)
        for key, _ in locked:  # a referenced sequence is never evicted
            assert cache.match_prefix(key, now)[0] == len(key)
        for p in paths(cache):  # the tree only holds prefixes of what was inserted
            assert any(s[:len(p)] == p for s in inserted)


def test_lru_evicts_the_least_recently_used_leaf_first() -> None:
    cache = RadixCache(capacity=100, block_size=BS)
    a, b = (SALT, 1, 1, 1, 1), (SALT, 2, 2, 2, 2)
    cache.insert(a, 1.0, SEED)
    cache.insert(b, 2.0, SEED)
    cache.match_prefix(a, 3.0)  # a becomes the most recently used
    assert cache.evict(1) == 4
    assert cache.match_prefix(a, 4.0)[0] == 5 and cache.match_prefix(b, 4.0)[0] == 1


def test_salt_token_separates_tenants() -> None:
    cache = RadixCache(capacity=100, block_size=BS)
    cache.insert((1, 5, 5, 5, 5), 0.0)
    assert cache.match_prefix((2, 5, 5, 5, 5), 1.0)[0] == 0


@settings(max_examples=300, deadline=None)
@given(st.integers(8, 60), ops)
def test_eviction_takes_the_least_recently_used_unreferenced_leaf(capacity: int, script) -> None:  # type: ignore[no-untyped-def]
    """Against a scan of the whole tree, with ties in last_access (broken by node id)."""
    cache = RadixCache(capacity=capacity, block_size=BS)
    locked: list[object] = []
    for t, (op, arg) in enumerate(script):
        now = float(t // 3)  # several operations at one time
        if op in ("insert", "lock"):
            need = len(arg) - cache.match_prefix(arg, now)[0]
            if cache.can_alloc(need):
                cache.alloc(need)
                cache.free(need)
                _, node = cache.insert(arg, now, SEED)
                if op == "lock":
                    cache.lock(node)
                    locked.append(node)
        elif op == "unlock" and locked:
            cache.unlock(locked.pop(arg % len(locked)))  # type: ignore[arg-type]
        elif op in ("evict", "alloc", "free"):
            for _ in range(arg % 4 + 1):
                leaves = [n for n in cache._nodes() if not n.children and n.ref == 0]
                if not leaves:
                    break
                victim = min(leaves, key=lambda n: (n.last_access, n.id))
                assert cache.evict(1) == len(victim.key)
                assert victim not in cache._nodes()


@settings(max_examples=300, deadline=None)
@given(st.integers(8, 60), ops)
def test_locking_in_the_walk_equals_locking_after_it(capacity: int, script) -> None:  # type: ignore[no-untyped-def]
    """match_prefix and insert with lock=True record no eviction entry for the node they lock
    (unlock or evict records it when it is next an unreferenced leaf): the same tree, events
    and evictions as lock() after them."""
    after, within = RadixCache(capacity, BS), RadixCache(capacity, BS)
    locked: list[tuple[object, object]] = []
    for t, (op, arg) in enumerate(script):
        now = float(t // 3)  # ties in last_access too
        if op in ("insert", "lock"):
            matched, prefix = after.match_prefix(arg, now)
            after.lock(prefix)
            matched_w, prefix_w = within.match_prefix(arg, now, lock=True)
            assert matched_w == matched
            need = len(arg) - matched
            if after.can_alloc(need):
                for cache in (after, within):
                    cache.alloc(need)
                    cache.free(need)
                if op == "lock":
                    node = after.insert(arg, now, SEED)[1]
                    after.lock(node)
                    locked.append((node, within.insert(arg, now, SEED, lock=True)[1]))
                else:
                    after.insert(arg, now, SEED)
                    within.insert(arg, now, SEED)
            after.unlock(prefix)
            within.unlock(prefix_w)
        elif op == "unlock" and locked:
            a, w = locked.pop(arg % len(locked))
            after.unlock(a)  # type: ignore[arg-type]
            within.unlock(w)  # type: ignore[arg-type]
        elif op in ("evict", "alloc", "free"):
            assert after.evict(arg) == within.evict(arg)
        assert after.take_events() == within.take_events()
        assert [(n.key, n.last_access, n.ref, n.blocks) for n in after._nodes()] == \
            [(n.key, n.last_access, n.ref, n.blocks) for n in within._nodes()]


@settings(max_examples=200, deadline=None)
@given(st.lists(seqs, min_size=1, max_size=8), st.lists(st.integers(0, 3), max_size=20))
def test_insert_from_a_node_on_the_path_and_known_hashes_change_nothing(inserts, tail) -> None:  # type: ignore[no-untyped-def]
    plain, hinted = RadixCache(10_000, BS), RadixCache(10_000, BS)
    for t, key in enumerate(inserts):
        plain.insert(key, float(t), SEED)
        hinted.insert(key, float(t), SEED)
    base = inserts[-1]
    _, node = hinted.match_prefix(base, 50.0)
    plain.match_prefix(base, 50.0)
    full = (*base, *tail)
    a = plain.insert(full, 60.0, SEED)[0]
    b = hinted.insert(full, 60.0, SEED, start=node, known=hashes(base))[0]
    assert a == b
    assert plain.take_events() == hinted.take_events()
    assert [(n.key, n.last_access, n.ref, n.blocks) for n in plain._nodes()] == \
        [(n.key, n.last_access, n.ref, n.blocks) for n in hinted._nodes()]


@settings(max_examples=200, deadline=None)
@given(st.lists(seqs, min_size=1, max_size=8), st.integers(1, 5),
       st.lists(st.integers(0, 1), min_size=8, max_size=8))
def test_shared_blocks_are_named_as_the_index_names_them(inserts, shared_blocks, known_of) -> None:  # type: ignore[no-untyped-def]
    """With a declared shared prefix (`shared_blocks`), every stored block's hash is the
    KV-reference index's (prefix_block_hashes with shared_tokens: the shared salt, then the
    tenant's joining), whether the cache hashes it or takes it from `known`."""
    shared = shared_blocks * BS
    seed = chain_seed("s", shared_blocks)
    cache = RadixCache(10_000, BS)
    index: set[int] = set()
    for t, key in enumerate(inserts):
        named = prefix_block_hashes(key[1:], "s", shared_tokens=shared, block_size=BS)
        index |= set(named)
        cache.insert(key, float(t), seed, known=named if known_of[t] else (),
                     shared_blocks=shared_blocks, salt="s")
        stored = {h for e in cache.take_events() if isinstance(e, BlockStored)
                  for h in e.block_hashes}
        assert stored <= index
    assert cache.cached_blocks() == index
