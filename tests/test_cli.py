"""The `ostinato` command as a user runs it: demo, up (stopped by SIGTERM), per-service --help."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

CLI = [sys.executable, "-m", "ostinato.cli"]


@pytest.mark.parametrize("command", ["up", "demo", "gateway", "planner", "worker", "sim-engine"])
def test_help(command: str) -> None:
    out = subprocess.run([*CLI, command, "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "usage: ostinato " + command in out.stdout


def test_demo_runs_the_example_program() -> None:
    out = subprocess.run([*CLI, "demo"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "9 calls completed, 0 failed" in out.stdout
    for step in ("plan", "compute density", "fan-out: compare with Paris", "join"):
        assert step in out.stdout
    assert "SIMULATED" in out.stdout


def test_up_serves_then_stops_cleanly_on_sigterm() -> None:
    proc = subprocess.Popen(
        [*CLI, "up", "--workers", "1", "--gateway-port", "0", "--planner-port", "0",
         "--worker-base-port", "0", "--engine-base-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        gateway = ""
        deadline = time.monotonic() + 60
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.strip().startswith("gateway"):
                gateway = line.split()[-1]
            if "Press Ctrl-C" in line or not line:
                break
        assert gateway, proc.stderr.read() if proc.stderr else ""
        with grpc.insecure_channel(gateway) as channel:
            resp = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                             timeout=5)
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0 and "stopped" in rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_bad_config_is_reported_with_the_field(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("planner:\n  polcy: x\n")
    out = subprocess.run([*CLI, "planner", "--config", str(cfg)], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 2 and "unknown field in planner: polcy" in out.stderr
