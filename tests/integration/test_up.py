"""`ostinato up` as a user runs it: however it ends (here SIGKILL, SIGHUP, SIGTERM), it leaves
no child process behind; only the gateway's ports are fixed, so the same ports bind again
right away and two meshes on different gateway ports serve side by side."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import grpc
import pytest
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

import ostinato
from tests.ports import fixed_port
from tests.processes import wait_gone

CLI = [sys.executable, "-m", "ostinato.cli"]
USER = [{"role": "user", "content": "Say hello."}]
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and prctl")


@cache
def _auth_flags() -> tuple[str, ...]:
    """--no-auth where `ostinato up` has it (a mesh that requires API keys by default)."""
    out = subprocess.run([*CLI, "up", "--help"], capture_output=True, text=True, timeout=30)
    return ("--no-auth",) if "--no-auth" in out.stdout else ()


@dataclass
class Up:
    proc: subprocess.Popen[bytes]
    gateway: str
    output: Path

    def children(self) -> set[int]:
        return _children(self.proc.pid)


def _children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def _start(tmp: Path, gateway_port: int, http_port: int,
           cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """`cwd`: run from there, as the `ostinato` script runs (its directory not on sys.path)."""
    output = tmp / f"up-{gateway_port}.out"
    cli = [sys.executable, "-P", *CLI[1:]] if cwd else CLI
    with open(output, "wb") as out:
        return subprocess.Popen([*cli, "up", "--workers", "1", "--gateway-port", str(gateway_port),
                                 "--http-port", str(http_port), *_auth_flags()],
                                stdout=out, stderr=subprocess.STDOUT, cwd=cwd,
                                # what is tested is the processes, not the answer cache: the
                                # gateway need not load its embedding model (seconds a start)
                                env={**os.environ, "OSTINATO_GATEWAY__SEMANTIC_CACHE": "false"})


def _ready(proc: subprocess.Popen[bytes], tmp: Path, gateway_port: int,
           timeout_s: float = 60.0) -> Up:
    """Once `ostinato up` printed that it is up and its gateway answers gRPC health."""
    output = tmp / f"up-{gateway_port}.out"
    deadline = time.monotonic() + timeout_s
    while "Press Ctrl-C" not in output.read_text(errors="replace"):
        assert proc.poll() is None, output.read_text(errors="replace")[-3000:]
        assert time.monotonic() < deadline, "ostinato up did not come up"
        time.sleep(0.05)
    gateway = f"127.0.0.1:{gateway_port}"
    with grpc.insecure_channel(gateway) as channel:
        resp = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                         timeout=10, wait_for_ready=True)
    assert resp.status == health_pb2.HealthCheckResponse.SERVING
    return Up(proc, gateway, output)


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do (TIME_WAIT)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _call(gateway: str) -> str:
    with ostinato.Client(gateway, timeout_s=20) as client, client.program() as program:
        return program.call(messages=USER, max_tokens=4).text


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Every `ostinato up` a test starts; killed at the end if the test did not stop it."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sigkilled_up_leaves_nothing_running_and_its_ports_free(
        tmp_path: Path, procs: list[subprocess.Popen[bytes]]) -> None:
    gateway_port, http_port = fixed_port(), fixed_port()
    procs.append(_start(tmp_path, gateway_port, http_port))
    up = _ready(procs[0], tmp_path, gateway_port)
    children = up.children()
    commands = [Path(f"/proc/{p}/cmdline").read_bytes() for p in children]
    assert len(children) == 5  # redis, planner, engine, worker, gateway
    assert sum(b"redis-server" in c for c in commands) == 1

    up.proc.kill()
    up.proc.wait()
    wait_gone(children)
    assert _bindable(gateway_port) and _bindable(http_port)

    # the next `ostinato up` on the same ports starts and serves; a closed terminal stops it
    procs.append(_start(tmp_path, gateway_port, http_port))
    again = _ready(procs[1], tmp_path, gateway_port)
    assert _call(again.gateway)
    children = again.children()
    again.proc.send_signal(signal.SIGHUP)
    assert again.proc.wait(timeout=30) == 0
    assert "stopped" in again.output.read_text()
    wait_gone(children)


def test_two_meshes_serve_side_by_side(tmp_path: Path,
                                       procs: list[subprocess.Popen[bytes]]) -> None:
    ports = [(fixed_port(), fixed_port()) for _ in range(2)]
    procs.extend(_start(tmp_path, g, h) for g, h in ports)  # both start at once
    ups = [_ready(proc, tmp_path, g) for proc, (g, _) in zip(procs, ports, strict=True)]
    assert all(_call(up.gateway) for up in ups)
    children = set().union(*(up.children() for up in ups))
    # the first loses its planner: it stops, fails, and keeps the logs that say why
    planner = next(p for p in ups[0].children()
                   if b"\0planner\0" in Path(f"/proc/{p}/cmdline").read_bytes())
    os.kill(planner, signal.SIGKILL)
    assert ups[0].proc.wait(timeout=30) == 1
    said = ups[0].output.read_text()
    assert "planner exited" in said, said[-2000:]
    kept = Path(said.split("logs are kept in ", 1)[1].split()[0])
    try:
        assert {p.name for p in kept.iterdir()} >= {"planner.log", "gateway.log"}
    finally:
        shutil.rmtree(kept)
    ups[1].proc.send_signal(signal.SIGTERM)
    assert ups[1].proc.wait(timeout=30) == 0
    wait_gone(children)


def test_a_redis_killed_under_up_is_started_again_with_its_data(
        tmp_path: Path, procs: list[subprocess.Popen[bytes]]) -> None:
    """`up` watches its embedded Redis as its services: killed, it is said, reaped and
    started again on its port from its append-only file (a walkthrough found it a zombie,
    unreported, quotas unmetered until someone started one by hand); the logs are kept."""
    gateway_port, http_port = fixed_port(), fixed_port()
    procs.append(_start(tmp_path, gateway_port, http_port))
    up = _ready(procs[0], tmp_path, gateway_port)
    url = up.output.read_text().split("  redis ", 1)[1].split()[0]
    client = redis.Redis.from_url(url, socket_timeout=10)
    client.set("ostinato-test-kept", "1")  # (appended to its file before the kill)
    [old] = [p for p in up.children() if b"redis-server" in Path(f"/proc/{p}/cmdline").read_bytes()]
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while "redis started again" not in up.output.read_text():
        assert time.monotonic() < deadline and up.proc.poll() is None, up.output.read_text()
        time.sleep(0.05)
    said = up.output.read_text()
    assert "ostinato up: redis exited (killed by SIGKILL)" in said
    assert old not in up.children()  # reaped, not a zombie
    assert [p for p in up.children() if b"redis-server" in Path(f"/proc/{p}/cmdline").read_bytes()]
    assert client.get("ostinato-test-kept") == b"1"  # on its port, from its file
    client.close()
    assert _call(up.gateway)
    children = up.children()
    up.proc.send_signal(signal.SIGTERM)
    assert up.proc.wait(timeout=30) == 0
    wait_gone(children)
    kept = Path(up.output.read_text().split("logs are kept in ", 1)[1].split()[0])
    try:
        gateway_log = (kept / "gateway.log").read_text()
        assert (kept / "redis.log").is_file()  # what Redis said (in the mesh's logs)
        if _auth_flags():  # open mode: said at the gateway's start too
            assert "auth off (gateway.allow_anonymous)" in gateway_log
    finally:
        shutil.rmtree(kept)


def test_modules_where_up_runs_do_not_shadow_the_services(
        tmp_path: Path, procs: list[subprocess.Popen[bytes]]) -> None:
    """A walkthrough ran `ostinato up` where a scratch cache.py lay: the planner imported it
    as its `cache` package (`python -m` puts the directory first) and the mesh did not
    start."""
    for name in ("cache", "tracing", "planner", "gateway", "workers", "bench"):
        (tmp_path / f"{name}.py").write_text('raise SystemExit("shadowed")\n')
    port = fixed_port()
    procs.append(proc := _start(tmp_path, port, fixed_port(), cwd=tmp_path))
    assert _call(_ready(proc, tmp_path, port).gateway)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 0
