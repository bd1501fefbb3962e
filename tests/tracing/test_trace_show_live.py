"""`ostinato trace show` on what the live mesh recorded: a fan-out program run on real
processes exporting to a file, shown in the terminal and drawn in Chromium."""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

import ostinato
from ostinato.config import load_mesh_config
from ostinato.mesh import Mesh
from tests.tracing.chromium_dom import drawn_calls
from tracing.span_file import read_spans
from tracing.trace_cli import main
from tracing.trace_view import DECODE, PREFILL, QUEUE, build_timeline

USER = [{"role": "user", "content": "Compare three cities for a conference."}]


@dataclass(frozen=True)
class Recorded:
    trace_file: Path
    program_id: str
    root: str
    fan: tuple[str, ...]
    join: str


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    """Root call, three parallel calls under it, a join: spans flushed by stopping the mesh."""
    trace_file = tmp_path_factory.mktemp("traces") / "spans.jsonl"
    cfg = load_mesh_config(None, environ={}, overrides={
        "workers": 2, "gateway": {"semantic_cache": False, "allow_anonymous": True},
        "telemetry": {"traces": "file", "trace_file": str(trace_file)}, "sim_engine": {"time_scale": 0.1}})
    mesh = Mesh(cfg, ephemeral_ports=True)
    mesh.start()
    try:
        with ostinato.Client(mesh.endpoints.gateway) as client, client.program() as program:
            root = program.call(messages=USER, max_tokens=16)
            with ThreadPoolExecutor(3) as pool:
                fan = list(pool.map(lambda i: program.call(
                    messages=[*USER, {"role": "user", "content": f"city {i}"}], thread_id=f"t{i}",
                    parents=[root.call_id], max_tokens=16), range(3)))
            join = program.call(messages=USER, parents=[o.call_id for o in fan], max_tokens=16)
        mesh.stop()
        yield Recorded(trace_file, program.program_id, root.call_id, tuple(o.call_id for o in fan),
                       join.call_id)
    finally:
        mesh.close()


def test_show_renders_the_program(recorded: Recorded, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["trace", "show", recorded.program_id[:12], "--file", str(recorded.trace_file),
               "--width", "140"])
    out, err = capsys.readouterr()
    assert (rc, err) == (0, "")
    assert f"program default/{recorded.program_id} " in out and "  ended" in out
    assert "5 calls, 0 cached, 0 failed   critical path: 3 calls" in out
    ids = {recorded.root, *recorded.fan, recorded.join}
    rows = {line[2:].split()[0]: line for line in out.splitlines() if line[2:].split()[:1] and
            line[2:].split()[0] in ids}  # call id -> its row, in the order shown
    order = list(rows)
    assert order[0] == recorded.root and order[-1] == recorded.join and set(order[1:4]) == set(recorded.fan)
    for row in rows.values():
        assert re.search(r" worker-\d +miss ", row), row
    critical = [c for c in order if rows[c].startswith("*")]
    assert len(critical) == 3 and critical[0] == recorded.root and critical[-1] == recorded.join
    assert f"critical path: {recorded.root} → {critical[1]} → {recorded.join}" in out


def test_list_names_the_program(recorded: Recorded, capsys: pytest.CaptureFixture[str]) -> None:
    """`trace list` on real spans (every service's, some naming the program): one row, the
    calls counted once each."""
    rc = main(["trace", "list", "--file", str(recorded.trace_file), "--width", "200"])
    out, err = capsys.readouterr()
    assert (rc, err) == (0, "")
    rows = [line.split() for line in out.splitlines() if line.startswith("default/")]
    assert len(rows) == 1 and rows[0][0] == f"default/{recorded.program_id}"
    assert rows[0][1] == "default" and rows[0][-5:] == ["5", "0", "0", "0", "ended"]


def test_phases_from_every_service(recorded: Recorded) -> None:
    timeline = build_timeline(read_spans(recorded.trace_file), recorded.program_id)
    for call in timeline.calls:
        assert [p.kind for p in call.phases] == [QUEUE, PREFILL, DECODE], call.call_id
        assert call.start_s <= call.phases[0].start_s and call.phases[-1].end_s <= call.end_s
        assert call.tokens_in > 0 and call.tokens_out > 0 and call.worker


def test_page_draws_every_call(recorded: Recorded, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    page = tmp_path / "program.html"
    assert main(["trace", "show", recorded.program_id, "--file", str(recorded.trace_file),
                 "--html", str(page)]) == 0
    capsys.readouterr()
    dom = drawn_calls(page, tmp_path)
    assert set(dom.calls) == {recorded.root, *recorded.fan, recorded.join}
    assert all(phases == [QUEUE, PREFILL, DECODE] for _, phases in dom.calls.values())
