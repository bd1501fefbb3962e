"""Whether processes the tests started (or their children) still run, read from /proc
(Linux): a test of `up` or of a child's lifetime waits for them to go, bounded."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterable, Iterator
from pathlib import Path


def gone(pid: int) -> bool:
    """Exited: no such process, or a zombie waiting for whoever reaps orphans here."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


def wait_gone(pids: Iterable[int], timeout_s: float = 15.0, what: str = "still running") -> None:
    """Returns once every one of `pids` is gone; fails after `timeout_s` naming those left."""
    pids = set(pids)
    deadline = time.monotonic() + timeout_s
    while not all(gone(p) for p in pids):
        left = {p: Path(f"/proc/{p}/cmdline").read_bytes()[:120] for p in pids if not gone(p)}
        assert time.monotonic() < deadline, f"{what}: {left}"
        time.sleep(0.02)


@contextlib.contextmanager
def owner_of_a_child(argv: list[str], cwd: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """A process that starts a child and prints its pid as its first line: (it, the child's
    pid), the child running; the process is killed at the end if it still runs."""
    owner = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=cwd)
    try:
        assert owner.stdout is not None
        child = int(owner.stdout.readline())
        assert not gone(child)
        yield owner, child
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
