"""The in-process semantic index: exact search inside one (tenant, context)."""

from __future__ import annotations

import numpy as np
import pytest

from cache.context_vectors import TenantVectors

DIMS = 8


def _vec(*components: float) -> np.ndarray:
    v = np.zeros(DIMS, dtype=np.float32)
    v[:len(components)] = components
    return v


def test_other_contexts_nearer_entries_do_not_hide_the_contexts_own() -> None:
    # the review's F2: the same question under 80 other contexts (identical vectors), then
    # under ours with a slightly different vector: a search over the tenant's 8 nearest,
    # filtered by context afterwards, never saw our entry
    index = TenantVectors(DIMS)
    for i in range(80):
        index.add("t", f"dup-{i}", f"ctx-{i}", _vec(1.0))
    index.add("t", "ours", "mine", _vec(1.0, 0.1))
    found = index.search("t", "mine", _vec(1.0), k=8)
    assert [n.entry_id for n in found] == ["ours"]
    assert found[0].similarity == pytest.approx(1 / np.sqrt(1.01), abs=1e-6)


def test_many_identical_vectors_under_one_context_stay_findable() -> None:
    index = TenantVectors(DIMS)
    for i in range(200):
        index.add("t", f"dup-{i}", "ctx", _vec(1.0))
    index.add("t", "late", "ctx", _vec(0.0, 1.0))
    assert [n.entry_id for n in index.search("t", "ctx", _vec(0.0, 1.0), k=1)] == ["late"]
    assert len(index.search("t", "ctx", _vec(1.0), k=8)) == 8


@pytest.mark.parametrize(("tenant", "context", "expected"), [
    ("a", "c1", ["a1-near", "a1-far"]),
    ("a", "c2", ["a2"]),
    ("b", "c1", ["b1"]),
    ("b", "c2", []),
    ("nobody", "c1", []),
])
def test_search_is_bounded_by_tenant_and_context(tenant: str, context: str,
                                                 expected: list[str]) -> None:
    index = TenantVectors(DIMS)
    index.add("a", "a1-far", "c1", _vec(0.0, 1.0))
    index.add("a", "a1-near", "c1", _vec(1.0, 0.2))
    index.add("a", "a2", "c2", _vec(1.0))
    index.add("b", "b1", "c1", _vec(1.0))
    assert [n.entry_id for n in index.search(tenant, context, _vec(1.0))] == expected


def test_nearest_first_and_at_most_k() -> None:
    index = TenantVectors(DIMS)
    for i in range(20):
        index.add("t", f"e{i}", "ctx", _vec(1.0, i / 10))
    found = index.search("t", "ctx", _vec(1.0), k=3)
    assert [n.entry_id for n in found] == ["e0", "e1", "e2"]
    assert found[0].similarity == pytest.approx(1.0)
    assert index.search("t", "ctx", _vec(1.0), k=0) == []


def test_remove_keeps_the_other_rows_findable_and_counts_right() -> None:
    index = TenantVectors(DIMS)
    for i in range(5):
        index.add("t", f"e{i}", "ctx", _vec(1.0, float(i)))
    index.add("u", "u0", "ctx", _vec(1.0))
    index.add("t", "e0", "ctx", _vec(0.0, 1.0))  # an id already held: ignored
    assert (len(index), index.count("t"), index.count("u")) == (6, 5, 1)
    index.remove("t", "e1")  # the last row (e4) moves into its place
    index.remove("t", "missing")
    assert index.count("t") == 4
    assert {n.entry_id for n in index.search("t", "ctx", _vec(1.0), k=10)} == {
        "e0", "e2", "e3", "e4"}
    assert index.search("t", "ctx", _vec(1.0, 4.0), k=1)[0].entry_id == "e4"
    for i in (0, 2, 3, 4):
        index.remove("t", f"e{i}")
    assert (len(index), index.count("t"), index.search("t", "ctx", _vec(1.0))) == (1, 0, [])


def test_vectors_are_compared_as_unit_vectors_and_dimensions_checked() -> None:
    index = TenantVectors(DIMS)
    index.add("t", "e", "ctx", _vec(3.0, 4.0))
    assert index.search("t", "ctx", _vec(6.0, 8.0))[0].similarity == pytest.approx(1.0)
    with pytest.raises(ValueError, match="dimensions"):
        index.add("t", "bad", "ctx", np.ones(DIMS + 1, dtype=np.float32))


def test_the_ids_of_a_tenant_and_dropping_them() -> None:
    index = TenantVectors(DIMS)
    index.add("t", "a", "c1", _vec(1.0))
    index.add("t", "b", "c2", _vec(0.0, 1.0))
    index.add("u", "a", "c1", _vec(1.0))
    assert (index.ids_of("t"), index.ids_of("u"), index.ids_of("v")) == ({"a", "b"}, {"a"}, set())
    index.drop("t")
    assert (index.count("t"), len(index), index.search("u", "c1", _vec(1.0))[0].entry_id) == (
        0, 1, "a")
