"""Mesh configuration: file, environment, validation errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from ostinato.config import ConfigError, load_mesh_config


def test_defaults_file_env_and_overrides(tmp_path: Path) -> None:
    f = tmp_path / "mesh.yaml"
    f.write_text("workers: 3\nplanner:\n  policy: fcfs+least_load\ngateway:\n  api_keys: {k: acme}\n")
    cfg = load_mesh_config(f, environ={"OSTINATO_PLANNER__PORT": "6000",
                                       "OSTINATO_LOG_LEVEL": "debug"},
                           overrides={"gateway": {"port": 7000}})
    assert cfg.workers == 3 and cfg.planner.policy == "fcfs+least_load"
    assert cfg.planner.port == 6000 and cfg.gateway.port == 7000
    assert dict(cfg.gateway.api_keys) == {"k": "acme"}
    assert cfg.worker.max_inflight == 16


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"planner": {"polcy": "x"}}, "unknown field in planner: polcy"),
        ({"planner": {"port": "abc"}}, "planner.port: expected an integer"),
        ({"sim_engine": {"zero_cost": "maybe"}}, "sim_engine.zero_cost: expected true or false"),
        ({"workers": 0}, "workers: must be at least 1"),
        ({"gateway": "nope"}, "gateway: expected a mapping"),
    ],
)
def test_invalid_config_names_the_field(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_mesh_config(None, environ={}, overrides=data)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_mesh_config(tmp_path / "nope.yaml", environ={})
