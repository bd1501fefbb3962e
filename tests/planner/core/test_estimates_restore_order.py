"""A planner that reads Redis late (it was away at the start: planner/learned_store.py reads
it again before the next save) restores the stored history under what it learned
meanwhile: those classes were observed after every stored one, so they are the most
recently observed, and the bound on classes (MAX_CLASSES) must forget stored ones first
(review 2026-12-07)."""

from __future__ import annotations

from planner.core.estimates import OutputEstimator, ProgramSizeEstimator
from planner.learned_store import _merged


def test_classes_learned_before_a_late_restore_are_not_forgotten_first() -> None:
    est = OutputEstimator(min_samples=1, max_classes=2)
    est.observe("live", 7)  # learned since this planner started
    stored = {"old1": [10], "old2": [20]}  # a previous planner's, oldest first
    est.restore(_merged(stored, est.history()))  # as LearnedStore.load does
    assert list(est.history()) == ["old2", "live"]
    assert est.estimate("live", 0) == 7


def test_a_class_both_stored_and_learned_keeps_both_histories_where_learned() -> None:
    est = OutputEstimator(min_samples=1, max_classes=3)
    est.observe("a", 7)
    est.restore(_merged({"a": [5], "b": [9]}, est.history()))
    assert est.history() == {"b": [9], "a": [5, 7]}


def test_program_classes_learned_before_a_late_restore_are_not_forgotten_first() -> None:
    sizes = ProgramSizeEstimator(window=8, min_samples=1, max_classes=2)
    sizes.observe("live", 7.0)
    stored = {"old1": [10.0], "old2": [20.0], ProgramSizeEstimator.POOLED: [10.0, 20.0]}
    sizes.restore(_merged(stored, sizes.history()))
    assert list(sizes.history()) == ["old2", "live", ProgramSizeEstimator.POOLED]
    assert sizes.history()[ProgramSizeEstimator.POOLED] == [10.0, 20.0, 7.0]
