"""The compose stack's `cpu` profile (deploy/docker-compose.yml), driven from the host as a user
would: the example program through the SDK, the official OpenAI client, traces, metrics, the
operator's CLI inside a container, and a graceful stop.

`make compose-test` (deploy/compose/compose-test.sh) builds the images, brings the stack up with
its ports on 127.0.0.1, and runs this file with OSTINATO_TEST_COMPOSE=1, the stack's MESH_*
settings and OSTINATO_TEST_COMPOSE_CMD (the compose command line); elsewhere it is skipped.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.prometheus_text import Samples, parse, value

pytestmark = pytest.mark.skipif(
    os.environ.get("OSTINATO_TEST_COMPOSE") != "1",
    reason="needs the compose stack that `make compose-test` brings up")

REPO = Path(__file__).resolve().parents[2]
MODEL = "sim/llama-3.1-8b"
METRICS = {"gateway": "MESH_GATEWAY_METRICS_PORT", "planner": "MESH_PLANNER_METRICS_PORT",
           "worker-0": "MESH_WORKER0_METRICS_PORT", "worker-1": "MESH_WORKER1_METRICS_PORT",
           "engine-0": "MESH_ENGINE0_PORT", "engine-1": "MESH_ENGINE1_PORT"}
PYTHON_SERVICES = ["gateway", "planner", "worker-0", "worker-1", "engine-0", "engine-1"]


def _port(name: str) -> int:
    return int(os.environ[name])


def _api_key() -> tuple[str, str]:
    key, tenant = os.environ["MESH_API_KEYS"].split(",")[0].split("=", 1)
    return key, tenant


def _compose(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    cmd = [*shlex.split(os.environ["OSTINATO_TEST_COMPOSE_CMD"]), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)


def _scrape() -> dict[str, Samples]:
    out = {}
    for service, port in METRICS.items():
        with urllib.request.urlopen(f"http://127.0.0.1:{_port(port)}/metrics", timeout=10) as r:
            out[service] = parse(r.read().decode())
    return out


class Run:
    """What the module's calls did: the example program and one OpenAI-client call."""

    def __init__(self) -> None:
        self.before = _scrape()
        key, _ = _api_key()
        example = subprocess.run(
            [sys.executable, str(REPO / "examples" / "react_agent.py"),
             "--gateway", f"127.0.0.1:{_port('MESH_GRPC_PORT')}", "--api-key", key],
            capture_output=True, text=True, timeout=120, cwd=REPO)
        self.example = example
        found = re.search(r"program_id='([0-9a-f]+)'", example.stdout)
        self.program_id = found.group(1) if found else ""
        calls = re.search(r"calls_completed=(\d+)", example.stdout)
        self.program_calls = int(calls.group(1)) if calls else 0

        import openai

        client = openai.OpenAI(base_url=f"http://127.0.0.1:{_port('MESH_HTTP_PORT')}/v1",
                               api_key=key, max_retries=0, timeout=60)
        self.models = [m.id for m in client.models.list()]
        self.chat = client.chat.completions.create(
            model=MODEL, max_tokens=16,
            messages=[{"role": "user", "content": "Name three rivers of Lyon."}])
        self.after = _scrape()

    def moved(self, service: str, name: str, **labels: str) -> float:
        services = [s for s in self.after if s.startswith(service)]
        return sum(value(self.after[s], name, **labels) - value(self.before[s], name, **labels)
                   for s in services)


@pytest.fixture(scope="module")
def run() -> Run:
    return Run()


def test_example_program_runs_through_the_sdk(run: Run) -> None:
    assert run.example.returncode == 0, run.example.stderr[-3000:]
    assert run.program_id, run.example.stdout
    assert run.program_calls >= 1
    assert "calls_failed=0" in run.example.stdout


def test_openai_client_from_the_host(run: Run) -> None:
    assert MODEL in run.models
    assert run.chat.choices[0].message.content
    assert run.chat.usage.completion_tokens > 0


def test_a_wrong_key_is_refused() -> None:
    import openai

    client = openai.OpenAI(base_url=f"http://127.0.0.1:{_port('MESH_HTTP_PORT')}/v1",
                           api_key="not-a-key-of-this-stack", max_retries=0, timeout=30)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])


def test_the_gateways_metrics_are_not_on_its_public_http_port() -> None:
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(f"http://127.0.0.1:{_port('MESH_HTTP_PORT')}/metrics", timeout=10)
    assert exc.value.code == 404


def test_metrics_of_every_service_moved(run: Run) -> None:
    _, tenant = _api_key()
    calls = run.program_calls + 1
    assert run.moved("gateway", "ostinato_calls_total", outcome="ok", tenant=tenant) == calls
    assert run.moved("gateway", "ostinato_tenant_tokens_total", type="output", tenant=tenant) > 0
    assert run.moved("planner", "ostinato_planner_calls_completed_total", status="ok") >= 1
    assert run.moved("worker-", "ostinato_worker_calls_total", outcome="ok") >= 1
    assert run.moved("worker-", "ostinato_worker_tokens_total", type="generated") > 0
    assert run.moved("engine-", "sglang:num_requests_total") >= 1


def _spans(path: Path) -> list[tuple[str, dict]]:
    """(service.name, span) of every span in the file exporter's OTLP JSON lines."""
    out = []
    for line in path.read_text().splitlines():
        for rs in json.loads(line).get("resourceSpans", []):
            attrs = {a["key"]: a["value"].get("stringValue") for a in rs["resource"]["attributes"]}
            out += [(attrs.get("service.name", ""), span)
                    for ss in rs.get("scopeSpans", []) for span in ss.get("spans", [])]
    return out


def test_traces_reach_the_host_and_show_the_program(run: Run) -> None:
    """Every service exports to /traces/spans.jsonl, bind-mounted from the host."""
    trace_file = Path(os.environ["MESH_TRACE_DIR"]) / "spans.jsonl"
    want = {"ostinato-gateway", "ostinato-planner", "ostinato-worker", "ostinato-sim-engine"}
    deadline = time.monotonic() + 30
    while True:
        services = {s for s, _ in _spans(trace_file)} if trace_file.exists() else set()
        if want <= services and run.program_id in trace_file.read_text():
            break
        assert time.monotonic() < deadline, f"spans from {sorted(services)} only"
        time.sleep(0.5)
    shown = subprocess.run([sys.executable, "-m", "ostinato.cli", "trace", "show", run.program_id,
                            "--file", str(trace_file), "--width", "160"],
                           capture_output=True, text=True, timeout=60, cwd=REPO)
    assert shown.returncode == 0, shown.stderr
    # the mesh's id: the tenant's name and generation, then the client's id
    # (ostinato/program_ids.py)
    assert re.search(rf"program [\w-]+(?:#[0-9a-f]+)?/{run.program_id}\b", shown.stdout), \
        shown.stdout
    assert f"{run.program_calls} calls" in shown.stdout
    assert re.search(r"worker-[01]", shown.stdout)


def test_services_run_as_non_root_and_the_cli_works_inside() -> None:
    uid = _compose("exec", "-T", "gateway", "id", "-u")
    assert (uid.returncode, uid.stdout.strip()) == (0, "10001"), uid.stderr
    _, tenant = _api_key()
    tenants = _compose("exec", "-T", "planner", "ostinato", "tenants", "--redis-url",
                       "redis://redis:6379/0", "list")
    assert tenants.returncode == 0, tenants.stderr
    assert f"tenant {tenant}:" in tenants.stdout


def test_services_stop_gracefully() -> None:
    """SIGTERM reaches each service (init: true) and each exits 0 before the timeout.
    Last in the file: it stops the stack."""
    # exit code 0 (not 137) shows each stopped on SIGTERM before compose's 30 s timeout
    stopped = _compose("stop", "--timeout", "30", *PYTHON_SERVICES, timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    listed = _compose("ps", "--all", "--format", "json", *PYTHON_SERVICES)
    rows = [json.loads(line) for line in listed.stdout.splitlines() if line.strip()]
    if len(rows) == 1 and isinstance(rows[0], list):  # older compose: one JSON array
        rows = rows[0]
    codes = {row["Service"]: row["ExitCode"] for row in rows}
    assert codes == dict.fromkeys(PYTHON_SERVICES, 0)
