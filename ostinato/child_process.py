"""Child processes that end with their parent, however the parent ends (Linux).

`Popen(..., preexec_fn=die_with_parent())` makes the kernel send the child SIGTERM when its
parent dies: a SIGKILL, a crash or a closed terminal of `ostinato up` then still stops every
service it started, and each stops gracefully on SIGTERM as on a normal stop
(prctl(2) PR_SET_PDEATHSIG; it survives execve of a non-set-user-ID program).

The signal follows the *thread* that forked, not the process: a child spawned from a thread
that later exits would be stopped with it. So the death signal is only set for children
spawned from the main thread; elsewhere (and off Linux) `die_with_parent()` is None and the
child is started as before.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
from collections.abc import Callable

PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return libc.prctl  # type: ignore[no-any-return]


# Loaded here, not in the forked child: the child runs as little Python as possible.
_PRCTL = _load_prctl()


def die_with_parent(sig: signal.Signals = signal.SIGTERM) -> Callable[[], None] | None:
    """A preexec_fn that has the child receive `sig` when the calling process dies; None
    where that cannot be set reliably (not Linux, or not on the main thread)."""
    prctl = _PRCTL
    if prctl is None or threading.current_thread() is not threading.main_thread():
        return None
    parent = os.getpid()
    number = int(sig)

    def preexec() -> None:
        if prctl(PR_SET_PDEATHSIG, number, 0, 0, 0) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"prctl(PR_SET_PDEATHSIG): {os.strerror(err)}")
        if os.getppid() != parent:  # the parent died before prctl: no signal will come
            os._exit(1)

    return preexec
