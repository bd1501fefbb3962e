"""The temporary working folders of meshes (/tmp/ostinato-mesh-*): each is claimed by its
mesh's process with a lock (flock) that the kernel releases when the process ends, however it
ends; a folder whose lock is free was left by a mesh that was killed (SIGKILL: nothing of it
ran to remove it), and the next mesh to start removes it.

A folder without the lock file (a mesh of an older version, or being claimed: the lock file
appears already locked) is left alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

PREFIX = "ostinato-mesh-"
LOCK_FILE = "owner.lock"


def folder_id(workdir: Path) -> str:
    """A name for the folder unique on the machine (its path, hashed): what its mesh's
    sockets in Linux's abstract namespace are named by (two folders of one name, in two
    places, shared them: a review)."""
    return hashlib.sha256(str(workdir.resolve()).encode()).hexdigest()[:16]


def claim(workdir: Path) -> int:
    """Locks `workdir` for this process (until the returned descriptor is closed, or the
    process ends). The lock file is made and locked under another name, then renamed: it is
    never seen unlocked."""
    pending = workdir / f"{LOCK_FILE}.{os.getpid()}"
    fd = os.open(pending, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, f"{os.getpid()}\n".encode())
    os.replace(pending, workdir / LOCK_FILE)
    return fd


def remove_stale(tmp_root: Path | None = None) -> list[Path]:
    """Removes this user's mesh folders in `tmp_root` (the temporary directory) whose owner
    has ended; the ones removed."""
    root = Path(tmp_root or tempfile.gettempdir())
    removed = []
    for workdir in root.glob(PREFIX + "*"):
        with contextlib.suppress(OSError):
            if workdir.lstat().st_uid != os.getuid() or not workdir.is_dir():
                continue  # another user's, or not a folder
        if _owner_gone(workdir / LOCK_FILE):
            shutil.rmtree(workdir, ignore_errors=True)
            removed.append(workdir)
    return removed


def _owner_gone(lock_file: Path) -> bool:
    try:
        fd = os.open(lock_file, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:  # none (not claimed, or not a mesh's), or not ours to read
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False  # its mesh runs
    else:
        return True
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
