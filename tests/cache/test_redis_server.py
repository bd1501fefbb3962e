"""The embedded redis-server (cache/redis_server.py): out of its owner's terminal process
group, yet stopped when its owner dies; one at a time on a data directory."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cache.redis_server import DataDirInUse, DataDirLock, EmbeddedRedis

ROOT = Path(__file__).parents[2]


def test_redis_runs_in_a_session_of_its_own(tmp_path: Path) -> None:
    """A Ctrl-C in `ostinato up`'s terminal goes to its foreground process group; Redis must
    not be in it, so that the mesh stops its services first and Redis last (review F1)."""
    with EmbeddedRedis(str(tmp_path)) as server:
        assert server._proc is not None
        pid = server._proc.pid
        assert os.getsid(pid) != os.getsid(0)
        assert os.getpgid(pid) != os.getpgrp()


# The owner: starts an embedded Redis, prints its pid, waits to be killed.
OWNER = """
import sys, time
from cache.redis_server import DataDirInUse, DataDirLock, EmbeddedRedis
server = EmbeddedRedis(sys.argv[1])
server.start()
print(server._proc.pid, flush=True)
time.sleep(60)
"""


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_redis_in_its_own_session_still_dies_with_its_owner(tmp_path: Path) -> None:
    owner = subprocess.Popen([sys.executable, "-c", OWNER, str(tmp_path)],
                             stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert owner.stdout is not None
        pid = int(owner.stdout.readline())
        assert not _gone(pid)
        owner.kill()
        owner.wait()
        deadline = time.monotonic() + 10
        while not _gone(pid):
            assert time.monotonic() < deadline, "redis-server outlived its owner"
            time.sleep(0.02)
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()


def test_a_data_dir_in_use_is_refused_until_its_redis_stops(tmp_path: Path) -> None:
    """Two meshes given one redis.data_dir ran two servers on one append-only file (operator
    review F2)."""
    first = EmbeddedRedis(str(tmp_path))
    first.start()
    try:
        second = EmbeddedRedis(str(tmp_path))
        with pytest.raises(DataDirInUse, match=rf"^{tmp_path} is in use by another embedded "
                                               rf"Redis \(process {os.getpid()}; another mesh\?\)$"):
            second.start()
        assert second._proc is None
    finally:
        first.stop()
    with EmbeddedRedis(str(tmp_path)) as again:  # the lock went with the server
        assert again._proc is not None and again._proc.poll() is None


def test_the_lock_goes_with_its_owner(tmp_path: Path) -> None:
    lock = DataDirLock(tmp_path)
    lock.acquire()
    with pytest.raises(DataDirInUse):
        DataDirLock(tmp_path).acquire()
    lock.release()
    other = DataDirLock(tmp_path)
    other.acquire()
    other.release()


def test_a_server_that_exits_silently_says_how_it_ended(tmp_path: Path) -> None:
    """(operator review: redis.server /bin/false gave 'redis-server did not start: ')"""
    with pytest.raises(RuntimeError, match=r"^redis-server did not start: /bin/false exited "
                                           r"with status 1 and said nothing$"):
        EmbeddedRedis(str(tmp_path), executable="/bin/false").start()
    with EmbeddedRedis(str(tmp_path)):  # its lock was released
        pass
