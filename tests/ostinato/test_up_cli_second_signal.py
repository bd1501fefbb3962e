"""A second Ctrl-C (SIGTERM, SIGHUP) while `ostinato up` stops its mesh kills the services
still stopping, not waiting for each in turn (a frozen one took its whole 10 s, one after
another: fault review 2026-12-07), during an aborted start-up too (session 70)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from ostinato import cli
from tests.ostinato.test_up_cli_run import HANDLERS, _FakeMesh, fake_mesh  # noqa: F401
from tests.ostinato.up_cli_env import no_mesh_environment  # noqa: F401 (autouse)

SERVICES = ["gateway", "planner", "worker-0", "worker-1", "engine-0", "engine-1"]


@pytest.mark.parametrize("second", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_second_signal_while_stopping_kills_the_services_left(
        fake_mesh: type[_FakeMesh], monkeypatch: pytest.MonkeyPatch,  # noqa: F811
        second: int) -> None:
    killed: list[str] = []
    monkeypatch.setattr(fake_mesh, "kill_services", lambda self: killed.extend(self.procs),
                        raising=False)
    monkeypatch.setattr(fake_mesh, "statuses", {name: [None] for name in SERVICES})
    looked = fake_mesh.redis_exit

    def first_signal(self: _FakeMesh) -> int | None:  # at the poll loop's first look
        HANDLERS[signal.SIGINT](signal.SIGINT, None)
        return looked(self)

    def close(self: _FakeMesh, *, keep_logs: bool = False) -> Path | None:
        assert killed == []  # the first signal stops the mesh in turn
        HANDLERS[second](second, None)  # ... and a second one while it stops
        self.kept_logs = keep_logs
        return None

    monkeypatch.setattr(fake_mesh, "redis_exit", first_signal)
    monkeypatch.setattr(fake_mesh, "close", close)
    assert cli.main(["up", "--gateway-port", "0", "--http-port", "0"]) == 0
    assert killed == SERVICES


@pytest.mark.parametrize("second", [signal.SIGINT, signal.SIGTERM])
def test_a_second_signal_during_an_aborted_start_up_kills_the_services(
        fake_mesh: type[_FakeMesh], monkeypatch: pytest.MonkeyPatch,  # noqa: F811
        second: int) -> None:
    """Mesh.start stops what it started once aborted, each service in turn: a second signal
    then kills them (it waited before)."""
    kills: list[int] = []
    monkeypatch.setattr(fake_mesh, "kill_services", lambda self: kills.append(1),
                        raising=False)
    monkeypatch.setattr(fake_mesh, "statuses", {name: [None] for name in SERVICES})
    monkeypatch.setattr(fake_mesh, "during_start", [
        lambda: HANDLERS[signal.SIGINT](signal.SIGINT, None),
        lambda: kills.append(0),  # (the first signal killed nothing)
        lambda: HANDLERS[second](second, None)])
    assert cli.main(["up", "--gateway-port", "0", "--http-port", "0"]) == 0
    assert kills == [0, 1]
