"""A sweep's runs in worker processes: the progress they report (finished programs, on a
shared counter), the bar drawn from it, and stopping them all at the first run that fails."""

from __future__ import annotations

import sys
import time
from concurrent.futures import Future
from typing import Any, cast


class Bar:
    def __init__(self, total: int, stream: Any = sys.stderr) -> None:
        self.total, self.stream, self.start = total, stream, time.monotonic()
        self.enabled = stream is not None

    def draw(self, done: int, runs_done: int, runs: int) -> None:
        if not self.enabled:
            return
        frac = min(1.0, done / max(1, self.total))
        elapsed = time.monotonic() - self.start
        eta = elapsed / frac - elapsed if frac > 0 else 0.0
        bar = "#" * int(30 * frac)
        self.stream.write(f"\r[{bar:<30}] {frac:6.1%}  runs {runs_done}/{runs}  "
                          f"{elapsed:5.0f}s elapsed, ~{eta:4.0f}s left ")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")


_progress: Any = None  # a shared counter of finished programs, set in each worker process
_stop: Any = None  # set by the sweep when a run failed: the others give up (_tick)


class SweepStopped(Exception):
    """A run gave up because another run of its sweep failed."""


def init_worker(counter: Any, stop: Any = None) -> None:
    global _progress, _stop
    _progress, _stop = counter, stop


def tick(n: int) -> None:
    if _stop is not None and _stop.value:
        raise SweepStopped("another run of the sweep failed")
    if _progress is not None:
        with _progress.get_lock():
            _progress.value += n


def wait_runs(futures: list[Future[dict[str, Any]]], stop: Any, counter: Any, bar: Bar,
          poll_s: float = 0.25) -> list[dict[str, Any]]:
    """The runs' results, drawing progress; the first run that fails stops the sweep: the
    runs not started are cancelled, those running told to give up (`stop`), and its error
    raised (not after every other run has ended, minutes later)."""
    while True:
        failed = next((f for f in futures if f.done() and not f.cancelled()
                       and f.exception() is not None), None)
        if failed is not None:
            stop.value = 1
            for f in futures:
                f.cancel()
            raise cast(BaseException, failed.exception())
        if all(f.done() for f in futures):
            return [f.result() for f in futures]
        bar.draw(counter.value, sum(f.done() for f in futures), len(futures))
        time.sleep(poll_s)
