"""Mesh working folders (ostinato/mesh_workdir.py): one left by a killed mesh is removed by
the next start; a running mesh's, and any folder without the lock file, stay (review F9)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ostinato.config import load_mesh_config
from ostinato.mesh import Mesh
from ostinato.mesh_workdir import LOCK_FILE, claim, folder_id, remove_stale
from workers.engine_process import kv_event_endpoints

ROOT = Path(__file__).parents[2]


def _folder(root: Path, name: str) -> Path:
    path = root / f"ostinato-mesh-{name}"
    (path / "logs").mkdir(parents=True)
    (path / "logs" / "gateway.log").write_text("...")
    return path


def test_only_the_folders_of_meshes_gone_are_removed(tmp_path: Path) -> None:
    running, closed, unclaimed = (_folder(tmp_path, n) for n in ("running", "closed", "old"))
    held = claim(running)
    os.close(claim(closed))  # its owner ended
    other = tmp_path / "ostinato-logs-kept"  # not a mesh folder
    other.mkdir()
    try:
        assert remove_stale(tmp_path) == [closed]
        assert running.is_dir() and unclaimed.is_dir() and other.is_dir()
        assert not closed.exists()
    finally:
        os.close(held)
    assert remove_stale(tmp_path) == [running]


KILLED = """
import sys, time
from pathlib import Path
from ostinato.mesh_workdir import claim
claim(Path(sys.argv[1]))
print("claimed", flush=True)
time.sleep(60)
"""


def test_a_sigkilled_owners_folder_is_removed(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "killed")
    owner = subprocess.Popen([sys.executable, "-c", KILLED, str(folder)],
                             stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert owner.stdout is not None and owner.stdout.readline() == "claimed\n"
        assert remove_stale(tmp_path) == []
        assert (folder / LOCK_FILE).read_text() == f"{owner.pid}\n"
    finally:
        owner.kill()
        owner.wait()
    assert remove_stale(tmp_path) == [folder]


def test_a_mesh_claims_its_own_folder_only(tmp_path: Path) -> None:
    cfg = load_mesh_config(None, environ={})
    own = Mesh(cfg)
    try:
        assert (own.workdir / LOCK_FILE).is_file()
        assert own.workdir not in remove_stale(own.workdir.parent)
    finally:
        own.close()
    assert not own.workdir.exists()
    given = Mesh(cfg, workdir=str(tmp_path / "given"))
    assert not (given.workdir / LOCK_FILE).exists()


def test_folders_of_one_name_name_their_meshes_sockets_apart(tmp_path: Path) -> None:
    """A mesh's sim engines publish on abstract sockets named by its folder: two folders of
    one name in two places (a soak's `--workdir out` run from two directories) shared them
    and the second engine could not bind (a review)."""
    (tmp_path / "a" / "run").mkdir(parents=True)
    (tmp_path / "b" / "run").mkdir(parents=True)
    first, second = (folder_id(tmp_path / d / "run") for d in "ab")
    assert first != second and folder_id(tmp_path / "a" / "run") == first
    assert folder_id(tmp_path / "a" / ".." / "a" / "run") == first  # one folder, one name
    assert kv_event_endpoints(f"{first}-engine-0") != kv_event_endpoints(f"{second}-engine-0")
