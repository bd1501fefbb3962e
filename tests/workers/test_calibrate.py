"""calibrate recovers a known profile's efficiencies from a server that follows it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import spawn_service, stop_service
from workers.sim.calibrate import Sample, fit, predict
from workers.sim.cost_model import CostModel, load_profile


def test_fit_recovers_parameters_from_exact_samples() -> None:
    truth = load_profile("h100-llama3.1-8b")
    cost = CostModel(truth)
    samples = [Sample(n, d, 0.0) for n in (128, 1024, 8192, 16384) for d in (0, 32)]
    samples = [Sample(s.prompt_tokens, s.decode_steps, predict(cost, s)) for s in samples]
    start = load_profile("h100-llama3.1-70b-tp4")  # wrong efficiencies to start from
    start = type(truth)(**{**truth.__dict__, "flops_eff": start.flops_eff,
                           "bandwidth_eff": start.bandwidth_eff,
                           "iteration_overhead_s": start.iteration_overhead_s})
    fitted = fit(start, samples)
    assert fitted.flops_eff == pytest.approx(truth.flops_eff, rel=0.05)
    assert fitted.bandwidth_eff == pytest.approx(truth.bandwidth_eff, rel=0.05)
    assert fitted.iteration_overhead_s == pytest.approx(truth.iteration_overhead_s, rel=0.1)


def test_calibrate_command_against_a_running_engine(tmp_path: Path) -> None:
    """End to end over HTTP; the server is the sim engine (time-scaled), standing in for SGLang."""
    proc, info = spawn_service(tmp_path, "sim-engine", "--time-scale", "0.05")
    try:
        out = tmp_path / "fitted.yaml"
        res = subprocess.run(
            [sys.executable, "-m", "ostinato.cli", "sim-engine", "calibrate", "--sglang-url",
             str(info["address"]), "--base-profile", "h100-llama3.1-8b", "--out", str(out),
             "--lengths", "128,2048,8192", "--decode-tokens", "16"],
            capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        fitted = load_profile(str(out))
        truth = load_profile("h100-llama3.1-8b")
        assert fitted.flops_eff == pytest.approx(truth.flops_eff, rel=0.1)
        assert fitted.bandwidth_eff == pytest.approx(truth.bandwidth_eff, rel=0.1)
    finally:
        stop_service(proc)
