"""Output-length estimates for calls without a hint (JITServe-style, learned per class).

Conservative at first (the call's max_new_tokens, capped), then a high quantile of what
calls of the same program class produced; refined as history grows.
"""

from __future__ import annotations

from collections import deque

DEFAULT_CAP = 512


class OutputEstimator:
    def __init__(self, quantile: float = 0.9, window: int = 256, min_samples: int = 8) -> None:
        if not 0 < quantile <= 1:
            raise ValueError("quantile must be in (0, 1]")
        self._q = quantile
        self._window = window
        self._min = min_samples
        self._history: dict[str, deque[int]] = {}

    def observe(self, key: str, completion_tokens: int) -> None:
        self._history.setdefault(key, deque(maxlen=self._window)).append(completion_tokens)

    def estimate(self, key: str, max_new_tokens: int, hint: int = 0) -> int:
        if hint > 0:
            return hint
        cap = max_new_tokens if max_new_tokens > 0 else DEFAULT_CAP
        seen = self._history.get(key)
        if seen is None or len(seen) < self._min:
            return min(cap, DEFAULT_CAP)
        ordered = sorted(seen)
        return min(cap, ordered[min(len(ordered) - 1, int(self._q * len(ordered)))])
