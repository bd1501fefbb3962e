"""Mesh.start (ostinato/mesh.py) without real services: a start that is asked to stop, a
Redis data directory in use."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from ostinato.config import load_mesh_config
from ostinato.mesh import Mesh, MeshStartAborted, MeshStartError, _Child


class _NeverReady:
    """A child process that runs until it is sent a signal and never writes its port file."""

    def __init__(self) -> None:
        self.signalled = False

    def poll(self) -> int | None:
        return -15 if self.signalled else None

    def send_signal(self, sig: int) -> None:
        self.signalled = True

    def wait(self, timeout: float | None = None) -> int:
        return -15


class _Unready(Mesh):
    def _spawn(self, name: str, args: list[str], config_file: Path) -> _Child:
        child = _Child(name, _NeverReady(), self.workdir / f"{name}.port.json",  # type: ignore[arg-type]
                       self.workdir / f"{name}.log")
        self._children.append(child)
        return child


def test_start_stops_soon_after_abort_is_set(tmp_path: Path) -> None:
    """`ostinato up` sets abort on Ctrl-C: the start ends then, with what had started
    stopped, not once every service is up (review F1)."""
    cfg = load_mesh_config(None, environ={}, overrides={"redis": {"url": "redis://127.0.0.1:1/0"}})
    mesh = _Unready(cfg, workdir=str(tmp_path), ephemeral_ports=True)
    abort = threading.Event()
    threading.Timer(0.2, abort.set).start()
    began = time.monotonic()
    with pytest.raises(MeshStartAborted, match="while planner was starting"):
        mesh.start(timeout_s=30, abort=abort)
    assert time.monotonic() - began < 20  # (not a timing bound: well short of the 30 s start)
    assert mesh._children == []  # stopped


def test_a_data_dir_in_use_fails_the_start_naming_the_field(tmp_path: Path) -> None:
    """Two meshes started at once on one redis.data_dir: the second's embedded Redis finds
    the first's lock (operator review F2)."""
    from cache.redis_server import DataDirLock

    lock = DataDirLock(tmp_path)
    lock.acquire()
    try:
        cfg = load_mesh_config(None, environ={}, overrides={"redis": {"data_dir": str(tmp_path)}})
        mesh = _Unready(cfg, workdir=str(tmp_path / "mesh"), ephemeral_ports=True)
        with pytest.raises(MeshStartError, match=r"^redis\.data_dir: .* is in use by another "):
            mesh.start(timeout_s=5)
        assert mesh._children == []  # nothing else started
    finally:
        lock.release()
