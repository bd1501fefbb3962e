"""deploy/docker-compose.yml read as data: what `docker compose config` cannot know. Ports
published on 127.0.0.1 only, a real PID 1 and a health check for every Ostinato service, the
start order gated on health, each health check asking the port its service binds, each worker
beside its engine, and the profiles the issue asks for. `make compose-test` runs it for real."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "deploy" / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
OURS = {name: s for name, s in SERVICES.items() if "ostinato" in str(s.get("image", ""))}


def _flag(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def _profile(name: str) -> set[str]:
    return {n for n, s in SERVICES.items() if name in s.get("profiles", [])}


def test_the_ostinato_services_run_the_one_image() -> None:
    assert set(OURS) == {"planner", "gateway", "engine-0", "engine-1", "worker-0", "worker-1"}
    for service in OURS.values():
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_ports_are_published_on_loopback_only(name: str) -> None:
    for port in SERVICES[name].get("ports", []):
        assert str(port).startswith("127.0.0.1:"), f"{name}: {port}"


@pytest.mark.parametrize("name", sorted(OURS))
def test_python_services_have_an_init_and_a_health_check_on_their_port(name: str) -> None:
    service = OURS[name]
    assert service["init"] is True  # else SIGTERM is ignored and a stop waits 10 s
    test = service["healthcheck"]["test"]
    assert test[:4] == ["CMD", "python", "-m", "ostinato.health_cli"]
    command = service["command"]
    port = _flag(command, "--port")
    if command[0] == "sim-engine":
        assert test[4] == f"http://127.0.0.1:{port}/health"
    else:
        assert test[4] == f"127.0.0.1:{port}"


@pytest.mark.parametrize("name", sorted(OURS))
def test_start_order_is_gated_on_health(name: str) -> None:
    for dep, cond in (OURS[name].get("depends_on") or {}).items():
        assert dep in SERVICES and "healthcheck" in SERVICES[dep], f"{name} -> {dep}"
        assert cond["condition"] == "service_healthy", f"{name} -> {dep}"


@pytest.mark.parametrize("index", [0, 1])
def test_each_worker_is_beside_its_engine(index: int) -> None:
    worker = SERVICES[f"worker-{index}"]
    command = worker["command"]
    engine = f"engine-{index}"
    assert _flag(command, "--engine-url") == f"http://{engine}:30000"
    assert _flag(command, "--engine-kv-events") == f"tcp://{engine}:5557"
    assert _flag(command, "--advertise-address") == f"worker-{index}:{_flag(command, '--port')}"
    sglang = SERVICES[f"sglang-{index}"]
    assert engine in sglang["networks"]["default"]["aliases"]  # the gpu engine, same name
    deps = worker["depends_on"]
    assert deps[engine]["required"] is False and deps[f"sglang-{index}"]["required"] is False
    sim = SERVICES[engine]["command"]
    assert '"endpoint": "tcp://*:5557"' in sim[sim.index("--kv-events-config") + 1]


def test_profiles() -> None:
    assert _profile("cpu") == {"redis", "planner", "gateway", "engine-0", "engine-1",
                               "worker-0", "worker-1"}
    assert _profile("gpu") == {"redis", "planner", "gateway", "sglang-0", "sglang-1",
                               "worker-0", "worker-1"}
    assert _profile("traces") == {"otel-collector", "jaeger"}


@pytest.mark.parametrize("name", ["sglang-0", "sglang-1"])
def test_gpu_engines(name: str) -> None:
    service = SERVICES[name]
    command = service["command"]
    for flag in ("--enable-priority-scheduling", "--kv-events-config", "--enable-trace",
                 "--enable-metrics", "--incremental-streaming-output", "--model-path /models/"):
        assert flag in command.replace("${MESH_MODEL:-/models/model}", "/models/model")
    (device,) = service["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"] and len(device["device_ids"]) == 1
    assert any(v.endswith(":/models:ro") for v in service["volumes"])


def test_gateway_takes_api_keys_and_runs_without_the_embedding_model() -> None:
    env = SERVICES["gateway"]["environment"]
    assert re.fullmatch(r"\$\{MESH_API_KEYS:-[^}=]{8,}=[a-z]+\}", env["OSTINATO_GATEWAY__API_KEYS"])
    assert env["OSTINATO_GATEWAY__SEMANTIC_CACHE"] == "${MESH_SEMANTIC_CACHE:-false}"


def test_collector_config_sends_traces_to_jaeger() -> None:
    config = yaml.safe_load((REPO / "deploy" / "compose" / "otel-collector.yaml").read_text())
    assert config["exporters"]["otlp/jaeger"]["endpoint"] == "jaeger:4317"
    pipeline = config["service"]["pipelines"]["traces"]
    assert pipeline["receivers"] == ["otlp"] and pipeline["exporters"] == ["otlp/jaeger"]
    assert SERVICES["otel-collector"]["volumes"] == [
        "./compose/otel-collector.yaml:/etc/otelcol/config.yaml:ro"]
