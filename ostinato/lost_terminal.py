"""Output to a terminal that may be gone: `ostinato up` must still stop its mesh when its
terminal closes (SIGHUP, then EIO on every write) or the pipe it writes to loses its reader
(EPIPE). A review found its print raise first, in the banner or before Mesh.close, so the
services were left to the kernel's SIGTERM, all at once, Redis with them."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import TextIO


def say(*parts: object, file: TextIO | None = None, flush: bool = False) -> None:
    """print(*parts): what cannot be written goes nowhere, and the stream is pointed at
    /dev/null, so that nothing written to it later (the interpreter's flush at exit
    included) fails either."""
    stream = file if file is not None else sys.stdout
    try:
        print(*parts, file=stream, flush=flush)
    except OSError:
        _to_devnull(stream)


def _to_devnull(stream: TextIO) -> None:
    with contextlib.suppress(OSError, ValueError, AttributeError):
        fd = stream.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)
