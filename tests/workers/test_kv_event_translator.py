"""Engine KV events -> the index's block hashes: the sim engine's radix cache publishes, the
wire format carries, and the translator must end up holding exactly the index hashes of what
the engine's cache holds, per tenant, whatever the engine's page size."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cache.block_hash import prefix_block_hashes, salt_seed
from workers.kv_event_translator import KvEventTranslator
from workers.kv_events import (
    AllBlocksCleared,
    BlockRemoved,
    BlockStored,
    decode_batch,
    encode_batch,
)
from workers.sim.radix import RadixCache

TENANTS = {"a": (1 << 64) - 11, "b": (1 << 64) - 12}  # salt -> the salt token the sim
# engine prepends (above any id the cluster simulator makes)


def wire(events):  # type: ignore[no-untyped-def]
    return decode_batch(encode_batch(1.0, events))[1]


def held_paths(cache: RadixCache) -> list[tuple[int, ...]]:
    out: list[tuple[int, ...]] = []

    def walk(node, prefix):  # type: ignore[no-untyped-def]
        prefix = prefix + node.key
        if not node.children and prefix:
            out.append(prefix)
        for c in node.children.values():
            walk(c, prefix)

    walk(cache.root, ())
    return out


def expected_index(cache: RadixCache, engine_bs: int, index_bs: int) -> set[int]:
    salt_of = {tok: salt for salt, tok in TENANTS.items()}
    out: set[int] = set()
    for path in held_paths(cache):
        tokens = path[1:]
        whole = len(tokens) // engine_bs * engine_bs  # the engine publishes whole pages only
        out |= set(prefix_block_hashes(tokens[:whole], salt_of[path[0]], block_size=index_bs))
    return out


ops = st.lists(st.one_of(
    st.tuples(st.just("insert"), st.sampled_from(sorted(TENANTS)),
              st.lists(st.integers(0, 2), min_size=0, max_size=20)),
    st.tuples(st.just("evict"), st.integers(1, 12), st.just([])),
), max_size=25)


@settings(max_examples=200, deadline=None)
@given(ops, st.sampled_from([(4, 4), (4, 8), (2, 4), (4, 2), (3, 4)]))
def test_translated_index_equals_the_engines_cache(operations, sizes) -> None:  # type: ignore[no-untyped-def]
    engine_bs, index_bs = sizes
    cache = RadixCache(capacity=10_000, block_size=engine_bs)
    tr = KvEventTranslator(block_size=index_bs)
    index: set[int] = set()
    for t, (op, arg, tokens) in enumerate(operations):
        if op == "insert":
            tr.expect(f"r{t}", arg, 0, tokens, float(t))
            cache.insert((TENANTS[arg], *tokens), float(t), salt_seed(arg))
        else:
            cache.evict(arg)
        got = tr.apply(wire(cache.take_events()), float(t))
        assert not set(got.removed) - index  # only what it said it held
        index = (index - set(got.removed)) | set(got.stored)
        tr.finish(f"r{t}", float(t))
        assert index == expected_index(cache, engine_bs, index_bs)
        assert tr.stats.unattributed == 0


def test_tenants_with_equal_prompts_get_their_own_hashes() -> None:
    cache = RadixCache(capacity=1000, block_size=4)
    tr = KvEventTranslator(block_size=4)
    tokens = list(range(12))
    tr.expect("ra", "a", 0, tokens, 0.0)
    tr.expect("rb", "b", 0, tokens, 0.0)
    cache.insert((TENANTS["a"], *tokens), 0.0, salt_seed("a"))
    cache.insert((TENANTS["b"], *tokens), 0.0, salt_seed("b"))
    got = tr.apply(wire(cache.take_events()), 0.0)
    assert set(got.stored) == (set(prefix_block_hashes(tokens, "a", block_size=4))
                               | set(prefix_block_hashes(tokens, "b", block_size=4)))


def test_mainline_sglang_unsalted_event_hashes() -> None:
    """Mainline SGLang gives two tenants' identical first pages one event hash; each tenant's
    own store event is attributed to its own request, oldest first."""
    tr = KvEventTranslator(block_size=2)
    tr.expect("ra", "a", 0, [1, 2, 3, 4], 0.0)
    tr.expect("rb", "b", 0, [1, 2, 9, 9], 0.0)
    first = tr.apply([BlockStored((100,), None, (1, 2), 2)], 0.0)
    assert first.stored == prefix_block_hashes([1, 2], "a", block_size=2)
    again = tr.apply([BlockStored((100,), None, (1, 2), 2)], 0.0)  # b's branch, same hash
    assert again.stored == prefix_block_hashes([1, 2], "b", block_size=2)
    gone = tr.apply([BlockRemoved((100,))], 0.0)  # ambiguous: both are dropped (under-claim)
    assert sorted(gone.removed) == sorted(first.stored + again.stored)


def test_shared_prefix_chains_and_lingering_requests() -> None:
    tr = KvEventTranslator(block_size=2, linger_s=5.0)
    tokens = [1, 2, 3, 4, 5, 6]
    tr.expect("r", "a", 4, tokens, 0.0)  # two shared blocks
    tr.finish("r", 1.0)
    got = tr.apply([BlockStored((7, 8, 9), None, tuple(tokens), 2)], 3.0)  # after the answer
    assert got.stored == prefix_block_hashes(tokens, "a", shared_tokens=4, block_size=2)
    assert got.stored[:2] == prefix_block_hashes(tokens, "b", shared_tokens=4, block_size=2)[:2]
    tr.expect("late", "a", 0, [5, 5], 3.0)
    tr.finish("late", 3.0)
    late = tr.apply([BlockStored((11,), None, (5, 5), 2)], 9.0)  # lingered past linger_s
    assert late.stored == [] and tr.stats.unattributed == 1


@pytest.mark.parametrize(("events", "unattributed"), [
    ([BlockStored((1,), 999, (1, 2), 2)], 1),           # unknown parent
    ([BlockStored((1,), None, (8, 8), 2)], 1),          # no expected request starts so
    ([BlockStored((1, 2), None, (1, 2, 3, 4), 2)], 0),
])
def test_unexplained_blocks_are_counted_not_indexed(events, unattributed) -> None:  # type: ignore[no-untyped-def]
    tr = KvEventTranslator(block_size=2)
    tr.expect("r", "a", 0, [1, 2, 3, 4], 0.0)
    got = tr.apply(events, 0.0)
    assert tr.stats.unattributed == unattributed
    assert bool(got.stored) == (unattributed == 0)


def test_all_blocks_cleared_forgets_everything() -> None:
    tr = KvEventTranslator(block_size=2)
    tr.expect("r", "a", 0, [1, 2, 3, 4], 0.0)
    got = tr.apply([BlockStored((1,), None, (1, 2), 2), AllBlocksCleared()], 0.0)
    assert got.cleared and got.stored == [] and tr.engine_blocks == 0
    assert tr.apply([BlockStored((2,), 1, (3, 4), 2)], 0.0).stored == []  # its parent is gone


def test_a_request_expected_before_a_reset_starts_a_chain_after_it() -> None:
    """Workers review 2026-12-05 F4: the engine restarts; the first request sent to the new
    one is expected while the old engine's chain start is still known (the reset comes with
    the new engine's first event batch), so it was taken to store none, and the new
    engine's chain of that prefix, and every block built on it, was never indexed."""
    tr = KvEventTranslator(block_size=2)
    tr.expect("old", "a", 0, [1, 2, 3, 4], 0.0)
    assert tr.apply([BlockStored((1, 2), None, (1, 2, 3, 4), 2)], 0.0).stored
    tr.expect("new", "a", 0, [1, 2, 5, 6], 0.0)  # sent to the restarted engine
    tr.reset()  # its first batch: the sequence went back
    got = tr.apply([BlockStored((7, 8), None, (1, 2, 5, 6), 2)], 0.0)
    assert got.stored == prefix_block_hashes([1, 2, 5, 6], "a", block_size=2)
    assert tr.stats.unattributed == 0


def test_a_tenants_chain_never_takes_anothers_continuation() -> None:
    """Tenant review 2026-12-08 F3: with event hashes blind to the salt (mainline SGLang),
    tenant B's chain through a first page both sent took A's private continuation, so B's
    salted hashes of A's blocks were published as held (routing, which names the worker,
    then answered B's guesses of A's prompt). A chain takes a page only where a request of
    its tenant sent it there; a request's output is not indexed."""
    bs = 4
    common, b_own, a_secret = [1, 2, 3, 4], [100, 101, 102, 103], [500, 501, 502, 503] * 2
    tr = KvEventTranslator(block_size=bs)
    tr.expect("b1", "b", 0, common + b_own, 0.0)
    out1 = tr.apply([BlockStored((1001,), None, tuple(common), bs),
                     BlockStored((1002,), 1001, tuple(b_own), bs)], 0.1)
    tr.expect("a1", "a", 0, common + a_secret, 0.2)
    out2 = tr.apply([BlockStored((1001,), None, tuple(common), bs),  # the same engine hash
                     BlockStored((1003, 1004), 1001, tuple(a_secret), bs)], 0.3)
    published = set(out1.stored) | set(out2.stored)
    assert set(prefix_block_hashes(common + a_secret, "a", block_size=bs)) <= published
    assert set(prefix_block_hashes(common + b_own, "b", block_size=bs)) <= published
    b_guess = prefix_block_hashes(common + a_secret, "b", block_size=bs)
    assert [h in published for h in b_guess] == [True, False, False]
    # B's answer (SGLang caches a call's output at its end) is B's: no prompt has it there
    answer = tr.apply([BlockStored((1005,), 1002, (7, 7, 7, 7), bs)], 0.4)
    assert answer.stored == prefix_block_hashes(common + b_own + [7] * 4, "b",
                                                block_size=bs)[-1:]
    assert tr.stats.unsent == 0 and tr.stats.unattributed == 0


def test_a_conversations_next_turn_chains_through_the_answer() -> None:
    """Diff review 2026-12-08: with output blocks left out, a conversation's second turn,
    stored under its first answer's last block, was never indexed (2 of 6 blocks)."""
    bs = 2
    prompt, answer, follow = [1, 2, 3, 4], [7, 8], [9, 10, 11, 12]
    tr = KvEventTranslator(block_size=bs)
    tr.expect("t1", "a", 0, prompt, 0.0)
    got = tr.apply([BlockStored((1, 2), None, tuple(prompt), bs)], 0.1)
    got2 = tr.apply([BlockStored((3,), 2, tuple(answer), bs)], 0.2)  # its answer, at its end
    tr.expect("t2", "a", 0, prompt + answer + follow, 0.3)
    got3 = tr.apply([BlockStored((4, 5), 3, tuple(follow), bs)], 0.4)
    assert got.stored + got2.stored + got3.stored == prefix_block_hashes(
        prompt + answer + follow, "a", block_size=bs)
    assert tr.stats.unsent == tr.stats.unattributed == 0


def test_a_chain_follows_its_requests_not_every_request_a_page() -> None:
    """Diff review 2026-12-08: each page was checked against every request of its tenant
    (0.48 s for one event of a 16,000-token prompt among 256 requests). A chain follows
    the requests it may be, narrowed page by page: a long event costs its pages."""
    tr = KvEventTranslator(block_size=16)
    for r in range(256):
        tr.expect(f"r{r}", "a", 0, [r + 1] + [0] * 15999, 0.0)
    followed: list[int] = []
    real = tr._next

    def counting(chains, follows, page):  # type: ignore[no-untyped-def]
        followed.append(sum(len(f) for f in follows))
        return real(chains, follows, page)

    tr._next = counting  # type: ignore[method-assign]
    last = [256] + [0] * 15999
    out = tr.apply([BlockStored(tuple(range(1000, 2000)), None, tuple(last), 16)], 0.1)
    assert out.stored == prefix_block_hashes(last, "a", block_size=16)
    assert followed[0] == 256 and set(followed[1:]) == {1}  # narrowed at the first page
