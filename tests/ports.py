"""Fixed ports for tests that must name one before a process binds it (`ostinato up
--gateway-port`): taken below the kernel's ephemeral range, which it never hands out for
port 0 or an outgoing connection, so that the other test process's servers and clients
(`make test` runs two, pytest-xdist) cannot take one between the pick and the bind; each
test process picks from a block of its own."""

from __future__ import annotations

import itertools
import os
import socket
from pathlib import Path

_BLOCK = 500  # ports per test process


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _worker_index() -> int:
    name = os.environ.get("PYTEST_XDIST_WORKER", "gw0")  # gw0, gw1 ... (none: one process)
    return int(name[2:]) if name[2:].isdigit() else 0


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


_low = _ephemeral_low() - _BLOCK * (1 + _worker_index())
_next = itertools.cycle(range(_low, _low + _BLOCK))


def fixed_port() -> int:
    """A free port of this test process's block, below the ephemeral range."""
    for _ in range(_BLOCK):
        port = next(_next)
        if _bindable(port):
            return port
    raise RuntimeError(f"no free port in {_low}-{_low + _BLOCK - 1}")
