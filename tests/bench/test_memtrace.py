"""bench/memtrace: the soak's debug hook traces only the processes it names, and only when
MEMTRACE_DIR is set; its snapshots and size lines are what bench.memtrace.compare reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.memtrace import compare

HOOK = str(Path(compare.__file__).parent)
# Waits (up to a minute) until the hook has written its first size line, holding a dict that
# the size line must report: a deterministic wait on the file, not on time.
CHILD = """
import sys, time
from pathlib import Path
class KvEventTranslator:
    def __init__(self): self._blocks = {i: i for i in range(7)}
keep = KvEventTranslator()
lines = Path(sys.argv[2])
deadline = time.monotonic() + 60
def written():  # a whole line: the snapshot is written before it
    return any(f.read_text().endswith(chr(10)) for f in lines.glob("*.sizes.jsonl"))
while time.monotonic() < deadline and not written():
    time.sleep(0.05)
"""


def _run(tmp_path: Path, **env: str) -> None:
    subprocess.run([sys.executable, "-c", CHILD, "memtrace-test", str(tmp_path)], check=True,
                   timeout=120, env={**os.environ, "PYTHONPATH": HOOK, "MEMTRACE_START_S": "0",
                                     "MEMTRACE_EVERY_S": "0.1", **env})


def test_a_named_process_is_traced_and_compared(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    _run(tmp_path, MEMTRACE_DIR=str(tmp_path), MEMTRACE_SERVICES="memtrace-test")
    (sizes,) = tmp_path.glob("memtrace-test-*.sizes.jsonl")
    line = json.loads(sizes.read_text().splitlines()[0])
    (translator,) = [v for k, v in line["sizes"].items() if k.startswith("KvEventTranslator@")]
    assert translator["_blocks"] == 7 and line["rss_kib"] > 0
    procs = compare.processes(tmp_path)
    assert list(procs) == [sizes.name.removesuffix(".sizes.jsonl")]
    name, snaps = next(iter(procs.items()))
    compare.report(name, snaps, first=1, top=5, key="lineno")
    assert "traced" in capsys.readouterr().out


def test_nothing_is_traced_unless_asked() -> None:
    subprocess.run([sys.executable, "-c", "import tracemalloc, sys; "
                    "sys.exit(tracemalloc.is_tracing())", "memtrace-test"], check=True,
                   timeout=60, env={**os.environ, "PYTHONPATH": HOOK,
                                    "MEMTRACE_SERVICES": "memtrace-test",
                                    "MEMTRACE_START_S": "0"})  # no MEMTRACE_DIR
