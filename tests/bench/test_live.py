"""`ostinato bench live --tracing off,file`: the live mesh twice, tracing's cost as ratios."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from bench.live import live_command


def test_tracing_on_and_off_in_one_run(tmp_path: Path) -> None:
    args = argparse.Namespace(calls=12, concurrency=3, rate=0.0, workers=1,
                              out=str(tmp_path), tracing="off,file")
    results = live_command(args)
    assert json.loads((tmp_path / "results.json").read_text()) == results
    assert [r["tracing"] for r in results["runs"]] == ["off", "file"]
    assert all(r["completed"] == 12 and r["errors"] == 0 for r in results["runs"])
    assert set(results["tracing_ratio"]) == {"calls_per_s", "p50", "p95", "p99"}


def test_unknown_tracing_mode_is_refused(tmp_path: Path) -> None:
    args = argparse.Namespace(calls=1, concurrency=1, rate=0.0, workers=1, out=str(tmp_path),
                              tracing="otlp")
    with pytest.raises(ValueError, match="--tracing"):
        live_command(args)
