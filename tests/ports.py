"""Ports for tests, safe while another test process runs beside this one (`make test` runs
two, pytest-xdist).

- `fixed_port()`: for a test that must name a port before a process binds it (`ostinato up
  --gateway-port`, a server restarted on its port): taken below the kernel's ephemeral range,
  which it never hands out for port 0 or an outgoing connection, so that the other test
  process's servers and clients cannot take it between the pick and the bind; each test
  process picks from a block of its own, claimed with a lock file (two pytest runs at once
  on one machine, a developer's beside CI's, took the same block: an engine's port answered
  after it stopped).
- `fixed_cluster_port()`: the same for a Redis Cluster node, whose cluster bus listens on
  port + 10000 (Redis 6 has no option to place it): both below the ephemeral range.
- `closed_port()`: a port where nothing listens, for as long as this process runs: bound,
  never listening (a connection to it is refused), so nobody else can take it meanwhile.
"""

from __future__ import annotations

import fcntl
import functools
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


# one folder for the machine, whatever a run's TMPDIR (ports are the machine's)
LOCKS = Path(os.environ.get("OSTINATO_TEST_PORTS_DIR", "/tmp"))
_claim: list[int] = []  # the lock file's descriptor, held until the process ends


def _block_index() -> int:
    """The first block no other test process on this machine holds, from this xdist
    worker's own (gw0: 0, gw1: 1 ...); the worker's own if every one is held."""
    first = _worker_index()
    for i in (first + k for k in range(_PROCESSES)):
        index = i % _PROCESSES
        try:
            fd = os.open(LOCKS / f"ostinato-test-ports-{index}.lock",
                         os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError:  # (another user's, say)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        _claim.append(fd)  # (released by the kernel when this process ends)
        return index
    return first % _PROCESSES


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class _Block:
    """This test process's block of ports ending below `top`, handed out in turn."""

    def __init__(self, top: int, index: int) -> None:
        self.low = top - _BLOCK * (1 + index)
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


@functools.cache
def blocks() -> tuple[int, _Block, _Block]:
    """This process's block index and its fixed and cluster blocks, claimed at the first
    port asked for (pytest-xdist's controller, which asks for none, holds none)."""
    index = _block_index()
    # the cluster blocks lie below every process's fixed block, bus ports included
    return (index, _Block(_EPHEMERAL, index),
            _Block(_EPHEMERAL - _BLOCK * _PROCESSES - CLUSTER_BUS_OFFSET, index))


_closed: list[socket.socket] = []  # held until the process ends


def fixed_port() -> int:
    """A free port of this test process's block, below the ephemeral range."""
    return blocks()[1].take()


def fixed_cluster_port() -> int:
    """A free port whose cluster-bus port (+ CLUSTER_BUS_OFFSET) is free, both below the
    ephemeral range and every process's fixed_port block."""
    return blocks()[2].take(CLUSTER_BUS_OFFSET)


def closed_port() -> int:
    """A port on 127.0.0.1 that refuses connections until this process ends."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    _closed.append(s)
    return int(s.getsockname()[1])
