"""The `ostinato` command as a user runs it: demo, up (stopped by SIGTERM), per-service --help."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cache.redis_server import find_vector_redis
from ostinato.harmony import ANALYSIS_OPEN, CALL_OPEN
from tests.conftest import spawn_service, stop_service
from workers.sim.chat_template import render

CLI = [sys.executable, "-m", "ostinato.cli"]


@pytest.mark.parametrize("command", ["up", "demo", "gateway", "planner", "worker", "sim-engine",
                                     "bench", "tenants", "trace", "health"])
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


@contextlib.contextmanager
def up_banner(*flags: str) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """`ostinato up` on free ports, read up to "Press Ctrl-C" (its banner's lines); killed at
    the end if it still runs."""
    proc = subprocess.Popen(
        [*CLI, "up", "--workers", "1", "--gateway-port", "0", "--planner-port", "0",
         "--worker-base-port", "0", "--engine-base-port", "0", "--http-port", "0", *flags],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # the banner and the processes are tested, not the answer cache: the gateway need
        # not load its embedding model (seconds a start)
        env={**os.environ, "OSTINATO_GATEWAY__SEMANTIC_CACHE": "false"},
    )
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 60
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "Press Ctrl-C" in line or not line:
                break
        yield proc, lines
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_up_serves_without_its_redis_then_stops_cleanly_on_sigterm() -> None:
    """One mesh for both (each start costs 10 s): a Redis that does not answer is said in the
    banner and the mesh serves anyway; SIGTERM stops it. The banner with an embedded Redis
    that answers is tests/ostinato/test_up_cli.py's, the embedded Redis serving
    tests/integration/test_up.py's."""
    with up_banner("--no-auth", "--redis-url", "redis://127.0.0.1:1/0") as (proc, lines):
        banner = "".join(lines)
        assert "Press Ctrl-C" in banner, banner + (proc.stderr.read() if proc.stderr else "")
        assert "WARNING        Redis does not answer" in banner
        gateway = http_url = ""
        for line in lines:
            if line.split()[:2] == ["gateway", "gRPC"]:
                gateway = line.split()[-1]
            if line.split()[:2] == ["gateway", "HTTP"]:
                http_url = line.split()[2]
        with grpc.insecure_channel(gateway) as channel:
            resp = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                             timeout=5)
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
        with urllib.request.urlopen(http_url.removesuffix("/v1") + "/health", timeout=5) as r:
            assert json.load(r) == {"status": "ok"}
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0 and "stopped" in rest


@pytest.mark.parametrize(("flags", "message"), [
    (["--workers", "0"], "workers: must be at least 1"),  # 0 was taken as "not given"
    (["--planner-replicas", "0"], "planner_replicas: must be at least 1"),
])
def test_up_refuses_zero_counts_before_starting_anything(flags: list[str], message: str) -> None:
    out = subprocess.run([*CLI, "up", "--no-auth", *flags], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2 and message in out.stderr, out.stderr[-500:]


def test_up_refuses_one_port_for_two_of_its_services_before_starting_anything() -> None:
    out = subprocess.run([*CLI, "up", "--no-auth", "--gateway-port", "47311", "--http-port",
                          "47311"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr[-500:]
    assert "gateway.http_port: port 47311 is also gateway.port's" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("flag", ["--gateway-port", "--http-port"])
def test_up_refuses_a_public_port_in_use_before_starting_anything(flag: str) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        other = "--http-port" if flag == "--gateway-port" else "--gateway-port"
        out = subprocess.run([*CLI, "up", "--no-auth", flag, str(port), other, "0"],
                             capture_output=True, text=True, timeout=60)
    field = "gateway.port" if flag == "--gateway-port" else "gateway.http_port"
    assert out.returncode == 2, out.stderr[-500:]
    assert f"{field}: 127.0.0.1:{port} is not free" in out.stderr and "Traceback" not in out.stderr


def test_bench_sim_writes_results_and_rejects_bad_input(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = subprocess.run([*CLI, "bench", "sim", "--workload", "react", "--programs", "20",
                          "--rates", "1,3", "--policies", "fcfs+round_robin,default",
                          "--engines", "2", "--out", str(tmp_path), "--quiet"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "SIMULATED" in out.stdout
    assert (tmp_path / "results.json").exists() and (tmp_path / "latency_vs_rate.png").exists()
    bad = subprocess.run([*CLI, "bench", "sim", "--workload", "react", "--rates", "1",
                          "--policies", "fastest+magic", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--policies: unknown policy 'fastest+magic'" in bad.stderr
    spec = tmp_path / "bad.yaml"
    spec.write_text("version: 1\nclasses: [{name: c, first_prompt_tokens: 5, output_tokens: -3}]\n")
    bad = subprocess.run([*CLI, "bench", "sim", "--workload", str(spec), "--rates", "1",
                          "--out", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "classes[0].output_tokens: must be >= 0" in bad.stderr


def test_planner_refuses_the_simulation_only_clairvoyant() -> None:
    out = subprocess.run([*CLI, "planner", "--policy", "clairvoyant", "--redis-url",
                          "redis://127.0.0.1:1", "--port", "0"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "exists only in the cluster simulator" in out.stderr


def test_bench_kv_measures_lookups_that_find_what_was_published(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = subprocess.run([*CLI, "bench", "kv", "--workers", "2", "--blocks", "256", "--lookups",
                          "20", "--out", str(tmp_path / "kv.json")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    results = json.loads((tmp_path / "kv.json").read_text())
    assert results["correct"] == results["lookups"] == 20 and results["lookup_ms"]["p50"] > 0
    bad = subprocess.run([*CLI, "bench", "kv", "--workers", "0"], capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 2 and "--workers" in bad.stderr


def test_bench_cache_runs_both_indexes_on_the_same_lookups(tmp_path) -> None:  # type: ignore[no-untyped-def]
    index = "both" if find_vector_redis() else "local"
    out = subprocess.run([*CLI, "bench", "cache", "--entries", "60", "--lookups", "10",
                          "--index", index, "--out", str(tmp_path / "cache.json")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    runs = json.loads((tmp_path / "cache.json").read_text())["by_index"]
    assert all(r["entries"] == 60 and r["lookup_ms"]["p50"] > 0 for r in runs.values())
    assert len({r["hits"] for r in runs.values()}) == 1  # same entries, same answers
    if index == "both":
        assert runs["redis"]["index"] == "redis-vector-sets" and runs["redis"]["redis_version"] >= "8"


def test_up_on_real_sglang_uses_the_models_tokenizer_everywhere(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import argparse

    from ostinato.config import ConfigError
    from ostinato.up_cli import _engine_overrides

    assert _engine_overrides(argparse.Namespace(engine="sim", model=None)) == {}
    with pytest.raises(ConfigError, match="--model"):
        _engine_overrides(argparse.Namespace(engine="sglang", model=None))
    out = _engine_overrides(argparse.Namespace(engine="sglang", model=str(tmp_path)))
    assert out["worker"] == {"engine": "sglang", "engine_model": str(tmp_path),
                             "kv_tokenizer": f"hf:{tmp_path}"}
    assert out["gateway"]["kv_tokenizer"] == f"hf:{tmp_path}"


def test_a_sim_engine_started_for_gpt_oss_writes_harmony(tmp_path: Path) -> None:
    """`ostinato sim-engine --tool-call-format gpt-oss --reasoning-format gpt-oss`: the flags
    reach its config (the one without the other is refused), and its model answers a chat
    turn offering a tool with an analysis and a call, in harmony."""
    half = subprocess.run([*CLI, "sim-engine", "--tool-call-format", "gpt-oss"],
                          capture_output=True, text=True, timeout=30)
    assert half.returncode != 0 and "gpt-oss (harmony) is both formats" in half.stderr
    proc, info = spawn_service(tmp_path, "sim-engine", "--tool-call-format", "gpt-oss",
                               "--reasoning-format", "gpt-oss", "--zero-cost")
    try:
        tool = {"type": "function", "function": {"name": "now", "parameters": {}}}
        prompt = render([{"role": "user", "content": "time?"}], [tool], tool_format="gpt-oss")
        body = json.dumps({"text": prompt, "sampling_params": {"max_new_tokens": 300}}).encode()
        request = urllib.request.Request(f"{info['address']}/generate", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as reply:
            text = json.loads(reply.read())["text"]
        assert text.startswith(ANALYSIS_OPEN) and CALL_OPEN + "now " in text
    finally:
        stop_service(proc)


def test_ctrl_c_before_a_service_serves_exits_130_without_a_traceback(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A service interrupted while it loads (the gateway's embedding model, before its own
    signal handlers are in place): asyncio's runner raises KeyboardInterrupt."""
    from ostinato import cli

    def interrupted(args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_run_service", interrupted)
    assert cli.main(["gateway"]) == 130
    assert capsys.readouterr().err == "ostinato gateway: interrupted\n"


def test_the_gateway_is_given_the_planners_configured_weights(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its tenants' shares of max_inflight_calls follow planner.tenant_weights where a
    tenant's record names no weight (diff review 2026-12-07: the wiring was untested)."""
    import gateway.main
    import tracing.logs
    from ostinato import cli

    got: dict[str, object] = {}
    # the process-wide logging set up for a gateway would outlive this test (later tests
    # read structlog's output with capsys)
    monkeypatch.setattr(tracing.logs, "configure_logging", lambda *args, **kwargs: None)

    def serve(*args: object, **kwargs: object) -> str:
        got["args"] = args
        return "coroutine"

    monkeypatch.setattr(gateway.main, "serve", serve)
    monkeypatch.setattr(cli, "run_loop", lambda coroutine, *args, **kwargs: None)
    config = tmp_path / "mesh.yaml"
    config.write_text("planner:\n  tenant_weights:\n    gold: '3'\n")
    assert cli.main(["gateway", "--config", str(config)]) in (0, None)
    assert got["args"][-1] == {"gold": 3.0}  # type: ignore[index]
