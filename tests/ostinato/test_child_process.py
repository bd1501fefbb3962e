"""die_with_parent: a child started with it gets SIGTERM when its parent is SIGKILLed."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ostinato.child_process import die_with_parent

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")

# The parent: starts a child that records the signal it gets, prints the child's pid, waits.
PARENT = """
import subprocess, sys, time
from ostinato.child_process import die_with_parent
child = subprocess.Popen([sys.executable, "-c", '''
import pathlib, signal, sys, time
def on_term(*_):
    pathlib.Path(sys.argv[1]).write_text("SIGTERM")
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
print("ready", flush=True)
time.sleep(60)
''', sys.argv[1]], preexec_fn=die_with_parent(), stdout=subprocess.PIPE, text=True)
child.stdout.readline()
print(child.pid, flush=True)
time.sleep(60)
"""


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


def test_child_gets_sigterm_when_its_parent_is_killed(tmp_path: Path) -> None:
    marker = tmp_path / "signal"
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(marker)],
                              stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
    try:
        assert parent.stdout is not None
        child_pid = int(parent.stdout.readline())
        assert not _gone(child_pid)
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 10
        while not _gone(child_pid):
            assert time.monotonic() < deadline, "the child outlived its parent"
            time.sleep(0.02)
        assert marker.read_text() == "SIGTERM"  # handled: a graceful stop, not a kill
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_only_set_from_the_main_thread() -> None:
    assert callable(die_with_parent())
    seen: list[object] = []
    t = threading.Thread(target=lambda: seen.append(die_with_parent()))
    t.start()
    t.join()
    assert seen == [None]  # a thread's children would die with the thread


# preexec made in this process runs in a grandchild, whose parent is not this process: as
# if the parent had died before prctl. It must exit rather than run unprotected.
ORPHAN = """
import os
from ostinato.child_process import die_with_parent
preexec = die_with_parent()
pid = os.fork()
if pid == 0:
    grandchild = os.fork()
    if grandchild == 0:
        preexec()
        os._exit(7)  # not reached
    _, status = os.waitpid(grandchild, 0)
    os._exit(os.waitstatus_to_exitcode(status))
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status))
"""


def test_child_whose_parent_is_already_gone_exits() -> None:
    out = subprocess.run([sys.executable, "-c", ORPHAN], capture_output=True, text=True,
                         timeout=30, cwd=Path(__file__).parents[2])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"
