"""die_with_parent: a command started through it gets SIGTERM when its parent is SIGKILLed,
and does not start at all if its parent is already gone."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from ostinato.child_process import PRELUDE, die_with_parent
from tests.processes import owner_of_a_child, wait_gone

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
ROOT = Path(__file__).parents[2]

# The parent: starts a child that records the signal it gets, prints the child's pid, waits.
PARENT = """
import subprocess, sys, time
from ostinato.child_process import die_with_parent
child = subprocess.Popen(die_with_parent([sys.executable, "-c", '''
import pathlib, signal, sys, time
def on_term(*_):
    pathlib.Path(sys.argv[1]).write_text("SIGTERM")
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
print("ready", flush=True)
time.sleep(60)
''', sys.argv[1]]), stdout=subprocess.PIPE, text=True)
child.stdout.readline()
print(child.pid, flush=True)
time.sleep(60)
"""


def test_child_gets_sigterm_when_its_parent_is_killed(tmp_path: Path) -> None:
    marker = tmp_path / "signal"
    with owner_of_a_child([sys.executable, "-c", PARENT, str(marker)], ROOT) as (parent, pid):
        parent.kill()
        parent.wait()
        wait_gone([pid], 10, "the child outlived its parent")
    assert marker.read_text() == "SIGTERM"  # handled: a graceful stop, not a kill


def test_the_command_itself_runs_with_its_pid_and_output() -> None:
    proc = subprocess.run(die_with_parent([sys.executable, "-c",
                                           "import os; print(os.getpid(), os.getppid())"]),
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout.split()[1]) == os.getpid()


def test_not_wrapped_off_the_main_thread_or_when_not_found() -> None:
    cmd = [sys.executable, "-c", "pass"]
    assert die_with_parent(cmd) != cmd
    seen: list[list[str]] = []
    t = threading.Thread(target=lambda: seen.append(die_with_parent(cmd)))
    t.start()
    t.join()
    assert seen == [cmd]  # a thread's children would die with the thread
    missing = ["/nonexistent/redis-server", "--port", "1"]
    assert die_with_parent(missing) == missing  # Popen raises FileNotFoundError as before
    with pytest.raises(FileNotFoundError):
        subprocess.Popen(die_with_parent(missing))


def test_child_whose_parent_is_already_gone_does_not_start() -> None:
    # the prelude told that its parent is another process: as if the parent had died
    out = subprocess.run([sys.executable, "-S", "-c", PRELUDE, "1", "15", sys.executable, "-c",
                          "print('started')"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and "started" not in out.stdout
    assert "parent exited" in out.stderr
