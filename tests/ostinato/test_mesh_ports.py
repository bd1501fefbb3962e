"""The ports Mesh (ostinato/mesh.py) gives its planners and workers, without starting them:
one mesh.yaml for every child, so a fixed metrics_port is counted up (replica or worker i:
metrics_port + i), as planner.port is, rather than bound by all of them (address in use)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from ostinato.config import load_mesh_config
from ostinato.mesh import Mesh, _metrics_port

# (configured, index, ephemeral ports) -> the child's metrics port
METRICS_PORTS = [
    ((9100, 0, False), 9100),
    ((9100, 3, False), 9103),
    ((0, 3, False), 0),  # a free one each
    ((-1, 3, False), -1),  # off
    ((9100, 3, True), 0),  # tests and the demo: every port a free one
    ((-1, 3, True), -1),
]


@pytest.mark.parametrize(("given", "port"), METRICS_PORTS)
def test_metrics_port(given: tuple[int, int, bool], port: int) -> None:
    assert _metrics_port(*given) == port


class _Recording(Mesh):
    """A Mesh whose children are not started: their command lines are recorded."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.spawned: dict[str, list[str]] = {}

    def _spawn(self, name: str, args: list[str], config_file: Path) -> object:  # type: ignore[override]
        self.spawned[name] = args
        return SimpleNamespace(name=name)

    def _wait(self, child: object, timeout_s: float) -> dict[str, object]:  # type: ignore[override]
        return {"address": f"127.0.0.1:{len(self.spawned)}"}


def _flag(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def test_each_planner_and_worker_gets_its_own_metrics_port(tmp_path: Path) -> None:
    cfg = load_mesh_config(None, environ={}, overrides={
        "workers": 3, "planner_replicas": 2, "planner": {"port": 47000, "metrics_port": 9200},
        "worker": {"metrics_port": 9100}})
    mesh = _Recording(cfg, workdir=str(tmp_path), worker_base_port=0, engine_base_port=0)
    mesh._start_planners(tmp_path / "mesh.yaml", 1.0)
    mesh._start_sim_workers(1.0)
    got = {name: (_flag(args, "--port"), _flag(args, "--metrics-port"))
           for name, args in mesh.spawned.items() if "--metrics-port" in args}
    assert got == {"planner": ("47000", "9200"), "planner-1": ("47001", "9201"),
                   "worker-0": ("0", "9100"), "worker-1": ("0", "9101"), "worker-2": ("0", "9102")}


def test_a_free_or_no_metrics_port_stays_so(tmp_path: Path) -> None:
    cfg = load_mesh_config(None, environ={}, overrides={
        "workers": 2, "planner": {"metrics_port": -1}})
    mesh = _Recording(cfg, workdir=str(tmp_path), worker_base_port=0, engine_base_port=0)
    mesh._start_planners(tmp_path / "mesh.yaml", 1.0)
    mesh._start_sim_workers(1.0)
    assert [_flag(mesh.spawned[n], "--metrics-port") for n in ("planner", "worker-0", "worker-1")
            ] == ["-1", "0", "0"]


def test_workers_and_engines_count_up_from_their_configured_ports(tmp_path: Path) -> None:
    """Without base ports given, worker i binds worker.port + i and sim engine i
    sim_engine.port + i (what `ostinato up` runs with a config that sets them)."""
    cfg = load_mesh_config(None, environ={}, overrides={
        "workers": 2, "worker": {"port": 47100}, "sim_engine": {"port": 47200}})
    mesh = _Recording(cfg, workdir=str(tmp_path))
    mesh._start_sim_workers(1.0)
    assert {name: _flag(args, "--port") for name, args in mesh.spawned.items()} == {
        "engine-0": "47200", "engine-1": "47201", "worker-0": "47100", "worker-1": "47101"}
