"""The embedded redis-server (cache/redis_server.py): out of its owner's terminal process
group, yet stopped when its owner dies; one at a time on a data directory."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from cache.redis_server import LOG_FILE, DataDirInUse, DataDirLock, EmbeddedRedis
from tests.processes import owner_of_a_child, wait_gone

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
from cache.redis_server import LOG_FILE, DataDirInUse, DataDirLock, EmbeddedRedis
server = EmbeddedRedis(sys.argv[1])
server.start()
print(server._proc.pid, flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_redis_in_its_own_session_still_dies_with_its_owner(tmp_path: Path) -> None:
    with owner_of_a_child([sys.executable, "-c", OWNER, str(tmp_path)], ROOT) as (owner, pid):
        owner.kill()
        owner.wait()
        wait_gone([pid], 10, "redis-server outlived its owner")


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


def test_a_port_another_redis_holds_is_not_taken_for_ours(tmp_path: Path) -> None:
    """Started on a port that another Redis took first (a free port can be taken between
    probe and bind, by another test process's): the PONG is that Redis's, not ours, so the
    start fails (or, with a free port, moves on) instead of sharing the other's data."""
    with EmbeddedRedis(str(tmp_path / "a")) as other:
        ours = EmbeddedRedis(str(tmp_path / "b"), port=other.port)
        with pytest.raises(RuntimeError, match="did not start"):
            ours.start()
        assert other._proc is not None and other._proc.poll() is None


def test_what_a_failed_start_said_is_quoted_not_what_earlier_runs_said(tmp_path: Path) -> None:
    """It writes to a file in its data directory (a pipe nobody read while it served would
    stop it once full); a failed start quotes this run's lines only."""
    (tmp_path / LOG_FILE).write_text("an earlier run's warning\n")
    script = tmp_path / "bad-redis"
    script.write_text("#!/bin/sh\necho 'FATAL CONFIG FILE ERROR'\nexit 1\n")
    script.chmod(0o755)
    with pytest.raises(RuntimeError, match=r"^redis-server did not start: FATAL CONFIG FILE "
                                           r"ERROR$"):
        EmbeddedRedis(str(tmp_path), executable=str(script)).start()
    assert (tmp_path / LOG_FILE).read_text().startswith("an earlier run's warning\n")


def test_poll_says_once_it_has_exited(tmp_path: Path) -> None:
    redis = EmbeddedRedis(str(tmp_path))
    assert redis.poll() is None  # not started
    redis.start()
    try:
        assert redis.poll() is None
        assert redis._proc is not None
        os.kill(redis._proc.pid, signal.SIGKILL)
        redis._proc.wait(timeout=30)
        assert redis.poll() == -signal.SIGKILL
    finally:
        redis.stop()
    assert redis.poll() is None  # stopped: nothing to report


def test_the_data_dir_stays_locked_while_its_server_runs_after_its_owner_let_go(
        tmp_path: Path) -> None:
    """The server holds the lock's descriptor too: an owner SIGKILLed let its lock go at
    once while its server, told to stop by the kernel (PR_SET_PDEATHSIG), still wrote the
    append-only file, and a new mesh could start a second server on it (fault review
    2026-12-07)."""
    server = EmbeddedRedis(str(tmp_path))
    server.start()
    try:
        assert server._lock is not None
        server._lock.release()  # the owner's own descriptor closed, as at its death
        with pytest.raises(DataDirInUse):
            DataDirLock(tmp_path).acquire()
    finally:
        server.stop()
    lock = DataDirLock(tmp_path)  # the server gone: free
    lock.acquire()
    lock.release()
