"""The output estimator keeps each class's window sorted as it changes (no sort per
estimate): its estimates equal those of the plain rule, a quantile of the sorted window's
calls that ran longer, across evictions and a restore. So does the program size estimator
(sorted windows kept the same way): its remaining work equals the plain mean over the sorted
window's larger programs, and its suffix sums a loop's, float for float."""

from __future__ import annotations

import bisect
import random

import pytest

from planner.core.estimates import DEFAULT_CAP, OutputEstimator, ProgramSizeEstimator


def _plain(history: list[int], generated: int, max_new: int, hint: int, q: float,
           min_samples: int) -> int:
    """refine() as documented, from the window itself (sorted at each call)."""
    if hint > generated:
        guess = hint
    else:
        ordered = sorted(history)
        longer = ordered[bisect.bisect_right(ordered, generated):]
        guess = longer[min(len(longer) - 1, int(q * len(longer)))] \
            if len(longer) >= min_samples else max(DEFAULT_CAP, 2 * generated)
    guess = max(guess, generated + 1 if generated > 0 else 0)
    return min(max_new, guess) if max_new > 0 else guess


@pytest.mark.parametrize("seed", range(4))
def test_estimates_match_the_plain_rule_across_evictions(seed: int) -> None:
    rng = random.Random(seed)
    window, q, min_samples = 16, 0.9, 4
    est = OutputEstimator(quantile=q, window=window, min_samples=min_samples)
    windows: dict[str, list[int]] = {"a": [], "b": []}
    for step in range(400):
        key = rng.choice("ab")
        n = rng.choice((rng.randint(1, 50), rng.randint(1, 2000)))
        est.observe(key, n)
        windows[key] = (windows[key] + [n])[-window:]
        if step == 200:  # a restarted planner takes back what was learned
            restored = OutputEstimator(quantile=q, window=window, min_samples=min_samples)
            restored.restore(est.history())
            est = restored
        generated, max_new = rng.randint(0, 1500), rng.choice((0, 256, 1024))
        hint = rng.choice((0, 0, rng.randint(1, 800)))
        assert est.refine(key, generated, max_new, hint) == _plain(
            windows[key], generated, max_new, hint, q, min_samples)
    assert est.estimate("unseen", 0) == DEFAULT_CAP


def test_size_table_suffix_sums_are_a_loops() -> None:
    rng = random.Random(7)
    sizes = ProgramSizeEstimator(window=64, min_samples=2)
    for _ in range(100):
        sizes.observe("k", rng.random() * rng.choice((1.0, 1e3, 1e6)))
    ordered, suffix = sizes._table("k") or ([], [])
    expected = [0.0] * (len(ordered) + 1)
    for i in range(len(ordered) - 1, -1, -1):
        expected[i] = expected[i + 1] + ordered[i]
    assert suffix == expected


def _plain_remaining(history: list[float], attained: float, min_samples: int) -> float | None:
    ordered = sorted(history)
    larger = ordered[bisect.bisect_right(ordered, attained):]
    if len(larger) < min_samples:
        return None
    total = 0.0
    for size in reversed(larger):  # summed from the largest, as the suffix sums are
        total += size
    return total / len(larger) - attained


@pytest.mark.parametrize("seed", range(3))
def test_remaining_work_matches_the_plain_rule_across_evictions(seed: int) -> None:
    rng = random.Random(seed)
    window, min_samples = 24, 3
    est = ProgramSizeEstimator(window=window, min_samples=min_samples)
    windows: dict[str, list[float]] = {"a": [], "b": [], ProgramSizeEstimator.POOLED: []}
    for step in range(300):
        key = rng.choice("ab")
        size = rng.choice((rng.random() * 100, float(rng.randint(1, 5000))))
        est.observe(key, size)
        for k in (key, ProgramSizeEstimator.POOLED):
            windows[k] = (windows[k] + [size])[-window:]
        if step == 150:
            restored = ProgramSizeEstimator(window=window, min_samples=min_samples)
            restored.restore(est.history())
            est = restored
        attained = rng.random() * 3000
        own = _plain_remaining(windows[key], attained, min_samples)
        pooled = _plain_remaining(windows[ProgramSizeEstimator.POOLED], attained, min_samples)
        assert est.remaining(key, attained) == (own if own is not None else pooled)


# (security review 2026-12-07: a tenant naming a new class per program grew these, and the
# learned history written to Redis every 30 s, without bound)
def test_the_classes_learned_are_bounded_the_least_recently_observed_forgotten() -> None:
    est = OutputEstimator(min_samples=1, max_classes=3)
    for key, tokens in [("a", 10), ("b", 20), ("c", 30), ("a", 11), ("d", 40)]:
        est.observe(key, tokens)
    assert list(est.history()) == ["c", "a", "d"]  # b, observed least recently, forgotten
    assert est.estimate("b", 0) == 512 and est.estimate("a", 0) == 11
    restored = OutputEstimator(min_samples=1, max_classes=2)
    restored.restore(est.history())  # (a history written with more classes: the latest kept)
    assert list(restored.history()) == ["a", "d"]


def test_program_classes_are_bounded_and_the_pooled_history_is_kept() -> None:
    sizes = ProgramSizeEstimator(window=8, min_samples=1, max_classes=2)
    for i in range(10):
        sizes.observe(f"class{i}", float(i))
    history = sizes.history()
    assert set(history) == {"class8", "class9", ProgramSizeEstimator.POOLED}
    assert history[ProgramSizeEstimator.POOLED] == [float(i) for i in range(2, 10)]
    assert sizes.remaining("class0", 0.0) == sizes.remaining(ProgramSizeEstimator.POOLED, 0.0)
    restored = ProgramSizeEstimator(window=8, min_samples=1, max_classes=1)
    restored.restore(history)
    assert set(restored.history()) == {"class9", ProgramSizeEstimator.POOLED}
