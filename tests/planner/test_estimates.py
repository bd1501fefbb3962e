"""Output-length estimates: conservative at first, learned per class, refined as tokens stream."""

from __future__ import annotations

import pytest

from planner.core.estimates import DEFAULT_CAP, OutputEstimator, ProgramSizeEstimator


def trained(samples: list[int], key: str = "k") -> OutputEstimator:
    est = OutputEstimator(quantile=0.9, min_samples=4)
    for n in samples:
        est.observe(key, n)
    return est


HISTORY = [10, 20, 30, 40, 50, 60, 70, 80, 90, 1000]


@pytest.mark.parametrize(("samples", "generated", "max_new", "hint", "expected"), [
    # no history: conservative, the default cap or the call's own max_new_tokens
    ([], 0, 0, 0, DEFAULT_CAP),
    ([], 0, 100, 0, 100),
    # a hint stands until the call outlives it
    ([], 0, 0, 42, 42),
    (HISTORY, 30, 0, 42, 42),
    # history: the 0.9 quantile of the class
    (HISTORY, 0, 0, 0, 1000),
    (HISTORY, 0, 500, 0, 500),
    # streaming: conditioned on the calls that ran at least as long (60..1000 -> 0.9q)
    ([10, 20, 30, 40, 50, 60, 70, 80, 90], 45, 0, 0, 90),
    # streaming past most of the history: too few longer samples -> conservative
    (HISTORY, 95, 0, 0, DEFAULT_CAP),
    # outliving the default cap without history: doubling, never past max_new_tokens
    ([], 600, 0, 0, 1200),
    ([], 600, 700, 0, 700),
    # the hint was wrong: the call is past it, fall back to history
    ([10, 20, 30, 40, 50, 60, 70, 80, 90], 45, 0, 40, 90),
    # never at or below what the call already produced
    ([5, 5, 5, 5, 5], 4, 0, 0, 5),
    ([], 700, 700, 0, 700),
])
def test_refine(samples: list[int], generated: int, max_new: int, hint: int, expected: int) -> None:
    assert trained(samples).refine("k", generated, max_new, hint) == expected


def test_estimate_is_refine_before_any_token() -> None:
    est = trained(HISTORY)
    assert est.estimate("k", 0) == est.refine("k", 0, 0) == 1000
    assert est.estimate("other", 0) == DEFAULT_CAP  # classes do not share history


def test_refinement_moves_up_as_a_long_call_outlives_short_ones() -> None:
    est = trained([20] * 50 + [400] * 10)
    assert est.estimate("k", 0) == 400  # 0.9 quantile of the whole class
    assert est.refine("k", 10, 0) == 400
    assert est.refine("k", 25, 0) == 400  # only the long calls ran this far
    assert est.refine("k", 401, 0) == 802  # longer than anything seen: doubling


def test_quantile_must_be_a_fraction() -> None:
    with pytest.raises(ValueError, match="quantile"):
        OutputEstimator(quantile=0)


def sized(samples: dict[str, list[float]], min_samples: int = 3) -> ProgramSizeEstimator:
    est = ProgramSizeEstimator(min_samples=min_samples)
    for key, sizes in samples.items():
        for size in sizes:
            est.observe(key, size)
    return est


@pytest.mark.parametrize(("samples", "key", "attained", "expected"), [
    ({}, "chat", 0.0, None),  # cold: no history at all
    ({"chat": [100, 200, 300]}, "chat", 0.0, 200.0),  # mean size
    ({"chat": [100, 200, 300, 400]}, "chat", 150.0, 300.0 - 150.0),  # mean of the larger, less attained
    # too few larger programs of the class: the pooled history of all classes
    ({"chat": [100, 200, 300], "lats": [5000, 6000, 7000]}, "chat", 250.0,
     (300 + 5000 + 6000 + 7000) / 4 - 250.0),
    ({"chat": [100, 200, 300]}, "lats", 0.0, 200.0),  # an unseen class ranks as average
    ({"chat": [100, 200, 300]}, "chat", 300.0, None),  # larger than anything seen
])
def test_program_remaining(samples: dict[str, list[float]], key: str, attained: float,
                           expected: float | None) -> None:
    got = sized(samples).remaining(key, attained)
    assert got == (None if expected is None else pytest.approx(expected))


def test_program_sizes_window_forgets_old_programs() -> None:
    est = ProgramSizeEstimator(window=3, min_samples=3)
    for size in [1000, 1000, 1000, 10, 10, 10]:
        est.observe("k", size)
    assert est.remaining("k", 0) == pytest.approx(10)
