"""Child processes that end with their parent, however the parent ends (Linux).

`Popen(die_with_parent(cmd), ...)` runs `cmd` through a few lines of Python that ask the
kernel to send it SIGTERM when its parent dies (prctl(2) PR_SET_PDEATHSIG, which survives
execve of a program that is not set-user-ID) and then exec it: same pid, same arguments. A
SIGKILL, a crash or a closed terminal of `ostinato up` then still stops every service it
started, and each stops gracefully on SIGTERM as on a normal stop. If the parent died before
the signal was set, the prelude exits instead of starting `cmd`.

Not a `preexec_fn`: that runs Python in the forked child, which is unsafe while other
threads run in the parent (a gRPC client's, say) and was seen to crash there.

The signal follows the *thread* that forked, not the process: a child started from a thread
that later exits would be stopped with it. So `cmd` is wrapped only when started from the
main thread; elsewhere, off Linux, or when `cmd[0]` cannot be found (so that Popen reports
it as before), `cmd` is returned as it is.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import threading
from collections.abc import Sequence

# argv: parent pid, signal number, the command. Only the standard library (python -S).
PRELUDE = """
import ctypes, os, sys
parent, sig, cmd = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
if ctypes.CDLL(None, use_errno=True).prctl(1, sig, 0, 0, 0) != 0:  # PR_SET_PDEATHSIG
    raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
if os.getppid() != parent:
    sys.exit("parent exited before the child started")
os.execvp(cmd[0], cmd)
"""


def die_with_parent(cmd: Sequence[str], sig: signal.Signals = signal.SIGTERM) -> list[str]:
    """`cmd` made to receive `sig` when the calling process dies (see the module doc)."""
    if (not sys.platform.startswith("linux") or not cmd or shutil.which(cmd[0]) is None
            or threading.current_thread() is not threading.main_thread()):
        return list(cmd)
    return [sys.executable, "-S", "-c", PRELUDE, str(os.getpid()), str(int(sig)), *cmd]
