"""Ports for tests, safe while another test process runs beside this one (`make test` runs
two, pytest-xdist).

- `fixed_port()`: for a test that must name a port before a process binds it (`ostinato up
  --gateway-port`, a server restarted on its port): taken below the kernel's ephemeral range,
  which it never hands out for port 0 or an outgoing connection, so that the other test
  process's servers and clients cannot take it between the pick and the bind; each test
  process picks from a block of its own.
- `fixed_cluster_port()`: the same for a Redis Cluster node, whose cluster bus listens on
  port + 10000 (Redis 6 has no option to place it): both below the ephemeral range.
- `closed_port()`: a port where nothing listens, for as long as this process runs: bound,
  never listening (a connection to it is refused), so nobody else can take it meanwhile.
"""

from __future__ import annotations

import itertools
import os
import socket
from pathlib import Path

_BLOCK = 500  # ports per test process
_PROCESSES = 8  # test processes the blocks leave room for
CLUSTER_BUS_OFFSET = 10000  # a Redis Cluster node's bus port: its port + this


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


class _Block:
    """This test process's block of ports ending below `top`, handed out in turn."""

    def __init__(self, top: int) -> None:
        self.low = top - _BLOCK * (1 + _worker_index())
        if self.low < 1024:
            raise RuntimeError(f"no room for test ports below {top}")
        self._next = itertools.cycle(range(self.low, self.low + _BLOCK))

    def take(self, *offsets: int) -> int:
        """A port p of the block with p and p + each offset free."""
        for _ in range(_BLOCK):
            port = next(self._next)
            if all(_bindable(port + o) for o in (0, *offsets)):
                return port
        raise RuntimeError(f"no free port in {self.low}-{self.low + _BLOCK - 1}")


_EPHEMERAL = _ephemeral_low()
_fixed = _Block(_EPHEMERAL)
# below every process's fixed block, bus ports included
_cluster = _Block(_EPHEMERAL - _BLOCK * _PROCESSES - CLUSTER_BUS_OFFSET)
_closed: list[socket.socket] = []  # held until the process ends


def fixed_port() -> int:
    """A free port of this test process's block, below the ephemeral range."""
    return _fixed.take()


def fixed_cluster_port() -> int:
    """A free port whose cluster-bus port (+ CLUSTER_BUS_OFFSET) is free, both below the
    ephemeral range and every process's fixed_port block."""
    return _cluster.take(CLUSTER_BUS_OFFSET)


def closed_port() -> int:
    """A port on 127.0.0.1 that refuses connections until this process ends."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    _closed.append(s)
    return int(s.getsockname()[1])
