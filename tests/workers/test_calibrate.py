"""calibrate recovers a known profile's efficiencies from a server that follows it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import spawn_service, stop_service
from workers.sim.calibrate import Sample, fit, predict, recorded_samples
from workers.sim.cost_model import CostModel, load_profile

RECORDED = Path(__file__).parents[2] / "docs/bench/gpu/h200-llama3.1-8b.json"


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


def test_h200_profile_is_the_fit_of_its_recorded_measurement() -> None:
    """The built-in h200 profile's efficiencies are what `calibrate --samples` fits to the
    timings recorded on an H200 (docs/bench/gpu/): nobody edits one without the other."""
    profile = load_profile("h200-llama3.1-8b")
    fitted = fit(profile, recorded_samples(str(RECORDED)))
    assert fitted.flops_eff == pytest.approx(profile.flops_eff, abs=1e-3)
    assert fitted.bandwidth_eff == pytest.approx(profile.bandwidth_eff, abs=1e-3)
    assert fitted.iteration_overhead_s == pytest.approx(profile.iteration_overhead_s, abs=1e-5)


@pytest.mark.parametrize(("content", "message"), [
    (None, "No such file"),
    ("not json", "not a samples file"),
    ('{"prefill": []}', "no 'samples'"),
    ('{"samples": [{"prompt_tokens": 128}]}', "no 'decode_steps'"),
    ('{"samples": [{"prompt_tokens": 128, "decode_steps": 0, "seconds": 0.01}]}',
     "needs decode samples"),
    ('{"samples": [{"prompt_tokens": 128, "decode_steps": 1, "seconds": -1}]}',
     "positive times"),
    ('{"samples": [{"prompt_tokens": 128, "decode_steps": 1, "seconds": NaN}]}',
     "positive times"),
    ('{"samples": [{"prompt_tokens": 128, "decode_steps": 0, "seconds": 0.01}, '
     '{"prompt_tokens": 256, "decode_steps": 8, "seconds": 0.09}]}', "of the same prompt length"),
])
def test_recorded_samples_refuses_what_is_not_a_measurement(
        tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "samples.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValueError, match=message):
        recorded_samples(str(path))


def test_fit_refuses_decode_steps_faster_than_the_overhead() -> None:
    """A tiny model's samples against an 8B profile: no bandwidth fits; an error, not a
    negative efficiency."""
    samples = [Sample(n, d, 0.0005 + d * 0.0001) for n in (64, 256) for d in (0, 1)]
    with pytest.raises(ValueError, match="cannot be fitted"):
        fit(load_profile("h100-llama3.1-8b"), samples)


def test_calibrate_command_from_recorded_samples(tmp_path: Path) -> None:
    out = tmp_path / "fitted.yaml"
    cmd = [sys.executable, "-m", "ostinato.cli", "sim-engine", "calibrate"]
    res = subprocess.run([*cmd, "--samples", str(RECORDED), "--base-profile", "h200-llama3.1-8b",
                          "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert load_profile(str(out)).bandwidth_eff == pytest.approx(0.8797, abs=1e-3)
    both = subprocess.run([*cmd, "--samples", str(RECORDED), "--sglang-url", "http://x:1"],
                          capture_output=True, text=True, timeout=120)
    assert both.returncode == 2 and "one of --sglang-url or --samples" in both.stderr
