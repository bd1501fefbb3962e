"""The environment a mesh service's process starts with (ostinato/service_env.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ostinato.service_env import CODE_ROOT, GRPC_EXPERIMENTS, service_env

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("parent", "expected"), [
    ({"PATH": "/bin"}, {"PATH": "/bin", "GRPC_EXPERIMENTS": GRPC_EXPERIMENTS}),
    # an operator's own setting wins
    ({"GRPC_EXPERIMENTS": "event_engine_client"}, {"GRPC_EXPERIMENTS": "event_engine_client"}),
    # the config file is the children's one source: no OSTINATO_* but the log's
    ({"OSTINATO_GATEWAY_PORT": "1", "OSTINATO_LOG_LEVEL": "debug"},
     {"OSTINATO_LOG_LEVEL": "debug", "GRPC_EXPERIMENTS": GRPC_EXPERIMENTS}),
    ({"OSTINATO_LOG_JSON": "0", "PYTHONUNBUFFERED": ""}, {"GRPC_EXPERIMENTS": GRPC_EXPERIMENTS}),
])
def test_service_env(parent: dict[str, str], expected: dict[str, str]) -> None:
    assert service_env(parent) == {**expected, "OSTINATO_LOG_JSON": "1", "PYTHONUNBUFFERED": "1",
                                   "PYTHONPATH": CODE_ROOT}


@pytest.mark.parametrize(("parent", "path"), [
    ("", [CODE_ROOT]),
    ("/opt/x", [CODE_ROOT, "/opt/x"]),  # the operator's kept, after ours
    (f"/opt/x:{CODE_ROOT}", [CODE_ROOT, "/opt/x"]),
])
def test_services_import_the_code_the_parent_imported(parent: str, path: list[str]) -> None:
    assert service_env({"PYTHONPATH": parent})["PYTHONPATH"].split(":") == path
    assert (Path(CODE_ROOT) / "ostinato" / "service_env.py").is_file()


def test_the_image_runs_its_services_with_the_same_grpc_setting() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert f"GRPC_EXPERIMENTS={GRPC_EXPERIMENTS}\n" in dockerfile
