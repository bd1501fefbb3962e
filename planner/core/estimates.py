"""Output-length estimates for calls without a hint (JITServe-style, learned per class).

Conservative at first (the call's max_new_tokens, capped), then a high quantile of what
calls of the same program class produced. While a call streams, `refine` conditions on
what it has produced so far: the quantile of the history that ran at least that long
(JITServe's just-in-time refinement), so a call that outlives its class's typical length
is re-estimated upwards instead of being assumed nearly done.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from itertools import accumulate
from typing import Generic, TypeVar

DEFAULT_CAP = 512
# Classes learned at most, the least recently observed forgotten first: a class is the
# client's label (ProgramOptions.program_class), and one finished call made one, so a tenant
# naming a new class per program grew the planner's memory, and the learned history it
# writes to Redis every 30 s, without bound (security review 2026-12-07).
MAX_CLASSES = 1024
_NONE: tuple[int, ...] = ()  # no history

V = TypeVar("V", int, float)


class SortedWindow(Generic[V]):
    """The last `size` values in arrival order, and the same values sorted, kept sorted as
    they change (estimates come at every submission and progress report, many per
    observation: sorting the window each time was a quarter of the simulator's planner-core
    CPU)."""

    __slots__ = ("ordered", "recent")

    def __init__(self, size: int, values: Iterable[V] = ()) -> None:
        self.recent: deque[V] = deque(values, maxlen=size)
        self.ordered: list[V] = sorted(self.recent)

    def add(self, value: V) -> None:
        recent = self.recent
        if len(recent) == recent.maxlen:  # the oldest leaves the window
            if not recent:
                return  # a window of 0: nothing is kept
            del self.ordered[bisect.bisect_left(self.ordered, recent[0])]
        recent.append(value)
        bisect.insort(self.ordered, value)


def _observed(windows: dict[str, SortedWindow[V]], key: str, size: int,
              max_classes: int) -> tuple[SortedWindow[V], str | None]:
    """`key`'s window, made the most recently observed (a new one made, the least recently
    observed class forgotten when `max_classes` are kept), and the class forgotten."""
    window, forgotten = windows.pop(key, None), None
    if window is None:
        window = SortedWindow(size)
        if len(windows) >= max_classes:
            forgotten = next(iter(windows))
            del windows[forgotten]
    windows[key] = window
    return window, forgotten


def _restored(live: dict[str, SortedWindow[V]], restored: dict[str, SortedWindow[V]],
              max_classes: int, last: str = "") -> dict[str, SortedWindow[V]]:
    """The windows once `restored` (a stored history, least recently observed first, merged
    with what was learned since) is read: the classes learned here since the start stay the
    most recently observed (a planner reading Redis late restores under them: a review found
    them forgotten first), a restored window replacing a live one of its class; `last` (the
    pooled history) kept last; then the least recently observed beyond `max_classes` gone."""
    order: list[str] = [*(k for k in restored if k not in live), *live]
    if last in order:
        order = [*(k for k in order if k != last), last]
    windows = {k: restored[k] if k in restored else live[k] for k in order}
    for k in order[:max(0, len(order) - max_classes)]:
        del windows[k]
    return windows


class OutputEstimator:
    def __init__(self, quantile: float = 0.9, window: int = 256, min_samples: int = 8,
                 max_classes: int = MAX_CLASSES) -> None:
        if not 0 < quantile <= 1:
            raise ValueError("quantile must be in (0, 1]")
        self._q = quantile
        self._window = window
        self._min = min_samples
        self._max_classes = max_classes
        self._windows: dict[str, SortedWindow[int]] = {}

    def observe(self, key: str, completion_tokens: int) -> None:
        _observed(self._windows, key, self._window, self._max_classes)[0].add(completion_tokens)

    def history(self) -> dict[str, list[int]]:
        """What was learned, per class, the least recently observed first (for persisting
        across restarts)."""
        return {k: list(w.recent) for k, w in self._windows.items()}

    def restore(self, history: Mapping[str, Sequence[float]]) -> None:
        self._windows = _restored(self._windows, {
            k: SortedWindow(self._window, (int(v) for v in values))
            for k, values in history.items()}, self._max_classes)

    def estimate(self, key: str, max_new_tokens: int, hint: int = 0) -> int:
        """Expected output tokens of a call that has not started."""
        return self.refine(key, 0, max_new_tokens, hint)

    def refine(self, key: str, generated: int, max_new_tokens: int, hint: int = 0) -> int:
        """Expected total output tokens of a call that has produced `generated` so far.

        Above `generated` while the call runs, never above its max_new_tokens (when set).
        A client hint stands until the call outlives it; history counts only once
        `min_samples` calls of the class ran at least as long as this one has; without
        enough history the estimate is conservative: the default cap, then doubling.
        """
        cap = max_new_tokens if max_new_tokens > 0 else None
        if hint > generated:
            guess = hint
        else:
            window = self._windows.get(key)
            ordered = _NONE if window is None else window.ordered
            # the history that ran longer than `generated`: ordered[first:], `longer` calls
            first = bisect.bisect_right(ordered, generated)
            longer = len(ordered) - first
            # min() and max() written out below (as the builtins choose: the first of equals):
            # this runs at every submission and progress report, and the builtins' calls
            # cost more than the comparisons
            if longer >= self._min:  # its quantile
                at = int(self._q * longer)
                guess = ordered[first + (at if at < longer - 1 else longer - 1)]
            else:
                guess = 2 * generated if 2 * generated > DEFAULT_CAP else DEFAULT_CAP
        floor = generated + 1 if generated > 0 else 0
        if floor > guess:
            guess = floor
        return guess if cap is None or guess < cap else cap


class ProgramSizeEstimator:
    """Remaining engine service of a program, learned per program class from programs that ended.

    `remaining(key, attained)` is the mean of (size - attained) over the class's recent
    programs that grew larger than `attained`: the expected remaining service given what the
    program has already received, i.e. shortest-expected-remaining-first without knowing
    the future. A class without enough history borrows the pooled history of all classes
    (so an unseen class ranks as an average program, not as a new one); None until
    `min_samples` such programs have been seen at all.
    """

    POOLED = "\0all"

    def __init__(self, window: int = 512, min_samples: int = 16,
                 max_classes: int = MAX_CLASSES) -> None:
        self._window = window
        self._min = min_samples
        self._max_classes = max(2, max_classes + 1)  # (the pooled history besides)
        self._windows: dict[str, SortedWindow[float]] = {}
        self._sorted: dict[str, tuple[list[float], list[float]]] = {}  # sizes, suffix sums

    def observe(self, key: str, size: float) -> None:
        # the pooled history observed last, so never the least recently observed one
        for k in (key, self.POOLED):
            window, forgotten = _observed(self._windows, k, self._window, self._max_classes)
            window.add(size)
            self._sorted.pop(k, None)
            if forgotten is not None:
                self._sorted.pop(forgotten, None)

    def history(self) -> dict[str, list[float]]:
        """What was learned, per class and pooled, the least recently observed first (for
        persisting across restarts)."""
        return {k: list(w.recent) for k, w in self._windows.items()}

    def restore(self, history: Mapping[str, Sequence[float]]) -> None:
        self._windows = _restored(self._windows, {
            k: SortedWindow(self._window, (float(v) for v in values))
            for k, values in history.items()}, self._max_classes, last=self.POOLED)
        self._sorted.clear()

    def _table(self, key: str) -> tuple[list[float], list[float]] | None:
        table = self._sorted.get(key)
        if table is None:
            window = self._windows.get(key)
            sizes = None if window is None else window.ordered
            if not sizes:
                return None
            # suffix[i] = sizes[i] + suffix[i + 1], summed from the end as a loop would
            suffix = list(accumulate(reversed(sizes), initial=0.0))
            suffix.reverse()
            table = self._sorted[key] = (sizes, suffix)
        return table

    def remaining(self, key: str, attained: float) -> float | None:
        own = self._remaining(key, attained)
        return own if own is not None else self._remaining(self.POOLED, attained)

    def _remaining(self, key: str, attained: float) -> float | None:
        table = self._table(key)
        if table is None:
            return None
        sizes, suffix = table
        i = bisect.bisect_right(sizes, attained)
        larger = len(sizes) - i
        if larger < self._min:
            return None
        return suffix[i] / larger - attained
