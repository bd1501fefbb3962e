"""`ostinato bench live --tracing off,file`: the live mesh twice, tracing's cost as ratios."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from bench.live import add_mesh_added, live_command, run_open_loop


def test_tracing_on_and_off_in_one_run(tmp_path: Path) -> None:
    """Open loop at --rate: the runs say the rate offered and whether it was sustained (a
    review found the single-rate form timed calls from a free caller, not their schedule)."""
    args = argparse.Namespace(calls=12, concurrency=3, rate=40.0, workers=1,
                              out=str(tmp_path), tracing="off,file")
    results = live_command(args)
    assert json.loads((tmp_path / "results.json").read_text()) == results
    assert [r["tracing"] for r in results["runs"]] == ["off", "file"]
    assert all(r["completed"] == 12 and r["errors"] == 0 and r["errors_by_status"] == {}
               and r["offered_per_s"] == 40.0 and isinstance(r["sustained"], bool)
               for r in results["runs"])
    assert set(results["tracing_ratio"]) == {"calls_per_s", "p50", "p95", "p99"}


def test_unknown_tracing_mode_is_refused(tmp_path: Path) -> None:
    args = argparse.Namespace(calls=1, concurrency=1, rate=0.0, workers=1, out=str(tmp_path),
                              tracing="otlp")
    with pytest.raises(ValueError, match="--tracing"):
        live_command(args)


def _row(mode: str, rate: float, p50: float, sustained: bool = True) -> dict:  # type: ignore[type-arg]
    return {"mode": mode, "offered_per_s": rate, "sustained": sustained,
            "overhead_ms": {"p50": p50, "p95": 2 * p50, "p99": 3 * p50}}


@pytest.mark.parametrize(("rows", "added"), [
    # the baseline at the row's rate: the row's percentiles less the baseline's
    ([_row("engine", 100, 1.0), _row("call", 100, 4.0)], {"call": {"p50": 3.0, "p95": 6.0, "p99": 9.0}}),
    # no baseline at that rate, or a rate either did not sustain: no figure
    ([_row("engine", 100, 1.0), _row("call", 200, 4.0)], {}),
    ([_row("engine", 100, 1.0, sustained=False), _row("http", 100, 4.0)], {}),
    ([_row("engine", 100, 1.0), _row("http", 100, 4.0, sustained=False)], {}),
    ([_row("call", 100, 4.0)], {}),
])
def test_what_the_mesh_adds_is_taken_against_the_engine_at_the_same_rate(
        rows: list[dict], added: dict) -> None:  # type: ignore[type-arg]
    add_mesh_added(rows)
    assert {r["mode"]: r["mesh_added_ms"] for r in rows if "mesh_added_ms" in r} == added


def test_an_open_loop_run_measures_the_mesh_and_its_engine_straight() -> None:
    """`--rates` with the `engine` baseline: the load generator in its own process against the
    gateway (Call) and against the mesh's engines (POST /generate), every call answered."""
    results = run_open_loop([20.0], 0.5, 2, ["engine", "call"])
    rows = {r["mode"]: r for r in results["rows"]}
    assert set(rows) == {"engine", "call"}
    for row in rows.values():
        assert row["sent"] == row["completed"] == 10 and row["errors"] == {}
    assert "mesh_added_ms" not in rows["engine"]
    assert rows["call"]["mesh_added_ms"]["p50"] == pytest.approx(
        rows["call"]["overhead_ms"]["p50"] - rows["engine"]["overhead_ms"]["p50"], abs=1e-3)
