"""A client in another language, from protos/ alone: clients/node/ostinato_client.js (Node.js,
@grpc/grpc-js with @grpc/proto-loader reading protos/ostinato/v1/*.proto at start-up, no
generated code) runs an interactive program with a fan-out and a join, a declared DAG, and
bad input against the live session mesh, and prints a JSON report, checked here against the
planner's records in Redis.

Its dependencies are installed with `npm ci` from the committed package-lock.json into a
temporary copy, so the working tree is left as it was. Skipped where node or npm is missing,
or where the npm registry cannot be reached.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from ostinato.mesh import Mesh
from tests.examples.mesh_records import program_calls

ROOT = Path(__file__).resolve().parents[2]
CLIENT_DIR = ROOT / "clients" / "node"
FILES = ("package.json", "package-lock.json", "ostinato_client.js")
NETWORK_ERRORS = ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ETIMEDOUT", "ECONNRESET", "network")
# What the gateway answers each bad request with (the Python SDK's tests check the same:
# tests/integration/test_mesh.py test_bad_input_gets_the_right_status).
BAD_INPUT = {
    "unknown program": "NOT_FOUND",
    "no messages": "INVALID_ARGUMENT",
    "bad api key": "UNAUTHENTICATED",
    "duplicate call id": "ALREADY_EXISTS",
    "unknown parent": "INVALID_ARGUMENT",
    "dag with a cycle": "INVALID_ARGUMENT",
}


@pytest.fixture(scope="module")
def client_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed for the Node.js client")
    work = tmp_path_factory.mktemp("node-client")
    for name in FILES:
        shutil.copy(CLIENT_DIR / name, work / name)
    proc = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--prefer-offline"], cwd=work,
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        if any(e in proc.stderr for e in NETWORK_ERRORS):
            pytest.skip(f"npm ci could not reach the registry: {proc.stderr[-500:]}")
        raise AssertionError(f"npm ci failed:\n{proc.stderr[-3000:]}")
    return work


@pytest.fixture(scope="module")
def store(mesh: Mesh) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(mesh.endpoints.redis_url, decode_responses=True)
    yield client
    client.close()


def _run(client_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["node", "ostinato_client.js", "--protos", str(ROOT / "protos"), *args],
                          cwd=client_dir, capture_output=True, text=True, timeout=120)


def test_node_client_runs_programs_and_gets_the_status_codes(
        client_dir: Path, mesh: Mesh, store: redis.Redis) -> None:
    proc = _run(client_dir, "--gateway", mesh.endpoints.gateway, "--api-key", "key-acme")
    report: dict[str, Any] = json.loads(proc.stdout)
    failed = [c for c in report["checks"] if not c["ok"]]
    assert proc.returncode == 0 and report["ok"] and not failed, (failed, proc.stderr)

    # the interactive program, as the planner recorded it: a root, three threads that are its
    # children, a join that depends on all three
    inter = report["interactive"]
    assert inter["tenant"] == "acme" and inter["summary"]["calls_completed"] == 5
    calls = program_calls(store, inter["program_id"], 5, tenant="acme")
    root, join = inter["first"]["call_id"], inter["join"]["call_id"]
    branches = [b["call_id"] for b in inter["branches"]]
    assert set(calls) == {root, join, *branches}
    assert all(c["state"] == "done" for c in calls.values())
    assert calls[root]["parents"] == []
    assert [calls[b]["thread_id"] for b in branches] == ["branch-0", "branch-1", "branch-2"]
    assert all(calls[b]["parents"] == [root] for b in branches)
    assert calls[join]["parents"] == branches
    assert all(c["simulated"] for c in [inter["first"], *inter["branches"], inter["join"]])

    # the declared DAG: its nodes are the program's calls, with their dependencies
    dag = report["dag"]
    assert dag["summary"]["calls_completed"] == 4 and dag["finished"][-1] == "merge"
    dag_calls = program_calls(store, dag["program_id"], 4, tenant="acme")
    assert {k: v["parents"] for k, v in dag_calls.items()} == {
        n["id"]: n["depends_on"] for n in dag["nodes"]}

    # bad input: each case got its status code, with a message
    got = {case["case"]: case["got"] for case in report["bad_input"]}
    assert got == BAD_INPUT
    assert all(case["details"] for case in report["bad_input"])


def test_node_client_reports_an_unreachable_gateway(client_dir: Path) -> None:
    """A failure is a report with ok false and exit status 1, not a crash."""
    proc = _run(client_dir, "--gateway", "127.0.0.1:1", "--timeout-s", "2")
    report = json.loads(proc.stdout)
    assert proc.returncode == 1 and report["ok"] is False
    [failure] = [c for c in report["checks"] if not c["ok"]]
    assert failure["detail"]["code"] == "UNAVAILABLE"


def test_node_client_refuses_unknown_arguments(client_dir: Path) -> None:
    proc = _run(client_dir, "--gatway", "x")
    assert proc.returncode == 2 and "usage:" in proc.stderr
