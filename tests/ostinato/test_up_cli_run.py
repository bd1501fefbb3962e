"""`ostinato up` (ostinato/up_cli.py) running a mesh, replaced by a fake: a signal during
start-up, a child that exits, the banner, a failed start, and the lines it prints as its
services exit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ostinato import cli, up_children, up_cli
from ostinato.config import load_mesh_config
from ostinato.mesh import MeshEndpoints, MeshStartAborted
from tests.ostinato.up_cli_env import no_mesh_environment  # noqa: F401 (autouse)
from tests.ports import closed_port


class _Proc:
    """A child whose poll() gives each scripted status in turn, then the last one."""

    def __init__(self, statuses: list[int | None]) -> None:
        self.statuses = statuses
        self.polls = 0

    def poll(self) -> int | None:
        self.polls += 1
        return self.statuses[min(self.polls, len(self.statuses)) - 1]


class _FakeMesh:
    """Mesh's surface that `run` uses; two workers on sim engines, one planner."""

    statuses: dict[str, list[int | None]] = {}
    redis_statuses: list[int | None] = [None]  # the embedded Redis's, look by look
    redis_start_error: Exception | None = None
    start_error: BaseException | None = None
    made: list[_FakeMesh] = []
    during_start: list[Any] = []  # called in start(), before it looks at `abort`

    def __init__(self, config: object, **kwargs: object) -> None:
        self.procs = {name: _Proc(s) for name, s in self.statuses.items()}
        self.redis = _Proc(self.redis_statuses)
        self.redis_starts = 0
        self.kept_logs: bool | None = None
        self.endpoints = MeshEndpoints(log_dir="/tmp/ostinato-mesh-x/logs")
        self.made.append(self)

    def start(self, *, abort: Any = None) -> MeshEndpoints:
        for step in self.during_start:
            step()
        if abort is not None and abort.is_set():
            raise MeshStartAborted("start-up interrupted")
        if self.start_error is not None:
            raise self.start_error
        return MeshEndpoints(
            gateway="127.0.0.1:1", planner="127.0.0.1:2", planners={
                name: "127.0.0.1:2" for name in self.procs if name.startswith("planner")},
            redis_url="redis://127.0.0.1:3/0", log_dir="/tmp/logs",
            workers={"worker-0": "127.0.0.1:4", "worker-1": "127.0.0.1:5"},
            engines=["http://127.0.0.1:6", "http://127.0.0.1:7"])

    def child(self, name: str) -> _Proc:
        return self.procs[name]

    def redis_exit(self) -> int | None:
        return self.redis.poll()

    def stop_redis(self) -> None:
        self.redis = _Proc([None])

    def start_redis(self, *, wait: bool = True) -> str:
        assert not wait  # (up's poll loop goes on while it starts)
        self.redis_starts += 1
        if self.redis_start_error is not None:
            self.redis = _Proc([None])  # (a failed start leaves no process: nothing to poll)
            raise self.redis_start_error
        self.redis = _Proc([None])
        return "redis://127.0.0.1:3/0"

    def redis_serving(self) -> bool:  # at the next look
        return True

    def respawn(self, name: str) -> None:  # a replica started again: runs, never serves
        self.procs[name] = _Proc([None])

    def ready(self, name: str) -> bool:
        return False

    def close(self, *, keep_logs: bool = False) -> Path | None:
        self.kept_logs = keep_logs
        return Path("/tmp/kept") if keep_logs else None


@pytest.fixture
def fake_mesh(monkeypatch: pytest.MonkeyPatch) -> type[_FakeMesh]:
    import ostinato.mesh

    monkeypatch.setattr(ostinato.mesh, "Mesh", _FakeMesh)
    monkeypatch.setattr(up_cli, "_redis_answers", lambda *_: True)
    # the test process's own handlers stay; `run`'s are kept here
    monkeypatch.setattr(up_cli.signal, "signal", lambda sig, handler: HANDLERS.update(
        {sig: handler}))
    monkeypatch.setattr(_FakeMesh, "made", [])
    monkeypatch.setattr(_FakeMesh, "during_start", [])
    return _FakeMesh


HANDLERS: dict[int, Any] = {}


@pytest.mark.parametrize("sig", [up_cli.signal.SIGINT, up_cli.signal.SIGTERM])
def test_a_signal_during_start_up_stops_the_start(
        fake_mesh: type[_FakeMesh], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], sig: int) -> None:
    """A Ctrl-C while the mesh starts stops it then (Mesh.start's abort), not once every
    service is up (review F1)."""
    monkeypatch.setattr(fake_mesh, "statuses", {})
    monkeypatch.setattr(fake_mesh, "during_start", [lambda: HANDLERS[sig](sig, None)])
    rc = cli.main(["up", "--gateway-port", "0", "--http-port", "0"])
    out, err = capsys.readouterr()
    assert rc == 0 and err == "", err
    assert "Press Ctrl-C" not in out and out.endswith("stopped\n")
    assert fake_mesh.made[0].kept_logs is False


def test_a_worker_that_exits_is_reported_and_reaped_and_the_mesh_goes_on(
        fake_mesh: type[_FakeMesh], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """worker-1 is killed at the first look, engine-0 exits at the second (the mesh goes on);
    the gateway exits at the third (the mesh stops: exit 1, the logs kept)."""
    monkeypatch.setattr(fake_mesh, "statuses", {
        "gateway": [None, None, 1], "planner": [None], "worker-0": [None],
        "worker-1": [-9], "engine-0": [None, 3], "engine-1": [None]})
    rc = cli.main(["up", "--gateway-port", "0", "--http-port", "0"])
    err = capsys.readouterr().err
    mesh = fake_mesh.made[0]
    assert rc == 1 and mesh.kept_logs is True
    lines = [line for line in err.splitlines() if " exited " in line]
    assert lines == [
        "ostinato up: worker-1 exited (killed by SIGKILL); the mesh goes on without it: the planner "
        "drops it (planner.worker_ttl_s) and calls go to the other workers",
        "ostinato up: engine-0 exited with status 3; the mesh goes on without it: worker-0 "
        "fails its health probe and no worker is left to serve calls: they queue until they "
        "time out (gateway.call_timeout_s); restart the mesh",  # worker-1 is gone too
        "ostinato up: gateway exited with status 1; stopping the mesh",
    ]
    assert all(proc.polls == 3 for proc in mesh.procs.values())  # every child polled: reaped


@pytest.mark.parametrize(("error", "then"), [
    (None, "redis started again on its port, from its append-only file"),
    (RuntimeError("redis-server did not start: timed out"),
     "redis could not be started again: redis-server did not start: timed out; the mesh goes "
     "on without it (restart the mesh)"),
])
def test_a_redis_that_dies_is_reported_and_started_again(
        fake_mesh: type[_FakeMesh], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], error: Exception | None, then: str) -> None:
    """The embedded Redis is killed at the first look: said, and started again once (a
    walkthrough found it a zombie, never reported, quotas unmetered for good); the logs
    are kept. The gateway's exit at the third look ends the run."""
    monkeypatch.setattr(fake_mesh, "statuses", {
        "gateway": [None, None, 1], "planner": [None], "worker-0": [None],
        "worker-1": [None], "engine-0": [None], "engine-1": [None]})
    monkeypatch.setattr(fake_mesh, "redis_statuses", [-9])
    monkeypatch.setattr(fake_mesh, "redis_start_error", error)
    rc = cli.main(["up", "--gateway-port", "0", "--http-port", "0"])
    err = capsys.readouterr().err
    mesh = fake_mesh.made[0]
    assert [line for line in err.splitlines() if "redis" in line] == [
        "ostinato up: redis exited (killed by SIGKILL); the services serve on without it (no "
        "caches or quotas, program records held back) while it starts again",
        f"ostinato up: {then}"]
    assert mesh.redis_starts == 1 and rc == 1 and mesh.kept_logs is True


def test_the_loop_watches_the_others_while_a_standby_starts_again(
        fake_mesh: type[_FakeMesh], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """planner-1 loses its lease at the first look and is started again (it never says it
    serves); the gateway's exit at the third look is seen then (before: `up` stood in the
    restart up to 30 s, seeing nothing else)."""
    monkeypatch.setattr(fake_mesh, "statuses", {
        "gateway": [None, None, 1], "planner": [None], "planner-1": [3], "worker-0": [None],
        "worker-1": [None], "engine-0": [None], "engine-1": [None]})
    rc = cli.main(["up", "--gateway-port", "0", "--http-port", "0"])
    err = capsys.readouterr().err
    mesh = fake_mesh.made[0]
    assert rc == 1 and "ostinato up: gateway exited with status 1; stopping the mesh" in err
    assert mesh.procs["planner-1"].polls == 2  # the new one, at the second and third looks
    assert "planner-1" not in err  # neither serving nor failed yet


def test_a_mesh_that_cannot_start_is_one_line_not_a_traceback(
        fake_mesh: type[_FakeMesh], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(fake_mesh, "statuses", {})
    monkeypatch.setattr(fake_mesh, "start_error", PermissionError(
        13, "Permission denied", "/usr/local/bin/redis-server"))
    rc = cli.main(["up", "--gateway-port", "0", "--http-port", "0"])
    err = capsys.readouterr().err
    assert rc == 1 and fake_mesh.made[0].kept_logs is True
    assert err.splitlines()[0] == ("ostinato up: the mesh did not start: [Errno 13] Permission "
                                   "denied: '/usr/local/bin/redis-server'")
    assert "Traceback" not in err


@pytest.mark.parametrize(("flags", "label"), [
    ([], "(SGLang native API, simulated)"),
    (["--engine", "sglang", "--model", "/m"], "(SGLang native API)"),  # review F4
])
def test_the_banner_says_which_engines_are_simulated(
        fake_mesh: type[_FakeMesh], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], flags: list[str], label: str) -> None:
    monkeypatch.setattr(fake_mesh, "statuses", {
        "gateway": [0], "planner": [None], "worker-0": [None], "worker-1": [None],
        "engine-0": [None], "engine-1": [None]})
    cli.main(["up", "--gateway-port", "0", "--http-port", "0", *flags])
    engines = [line for line in capsys.readouterr().out.splitlines() if "  engine-" in line]
    assert [line.split("   ", 1)[1] for line in engines] == [label, label]


@pytest.mark.parametrize("answers", [True, False])
def test_the_banner_warns_when_redis_does_not_answer(
        fake_mesh: type[_FakeMesh], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], answers: bool) -> None:
    monkeypatch.setattr(fake_mesh, "statuses", {
        "gateway": [0], "planner": [None], "worker-0": [None], "worker-1": [None],
        "engine-0": [None], "engine-1": [None]})
    monkeypatch.setattr(up_cli, "_redis_answers", lambda *_: answers)
    cli.main(["up", "--gateway-port", "0", "--http-port", "0"])
    out = capsys.readouterr().out
    assert ("WARNING        Redis does not answer at that URL" in out) is not answers


def test_redis_answers(tmp_path: Path) -> None:
    from cache.redis_server import EmbeddedRedis

    cfg = load_mesh_config(None, environ={})
    with EmbeddedRedis(str(tmp_path)) as server:
        assert up_cli._redis_answers(cfg, server.url)
    assert not up_cli._redis_answers(cfg, f"redis://127.0.0.1:{closed_port()}/0")


def test_a_failed_start_points_at_the_kept_logs_not_the_removed_ones(
        fake_mesh: type[_FakeMesh], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A launched engine that exits names its log; the mesh's folder is gone by the time the
    operator reads it, its copy is not (review F3)."""
    monkeypatch.setattr(fake_mesh, "statuses", {})
    monkeypatch.setattr(fake_mesh, "start_error", RuntimeError(
        "worker-0 exited with 1:\nostinato worker: the engine exited during start-up (status 1)"
        ": No module named sglang (its log: /tmp/ostinato-mesh-x/logs/engine-0.log)"))
    rc = cli.main(["up", "--gateway-port", "0", "--http-port", "0"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "(its log: /tmp/kept/engine-0.log)" in err and "ostinato-mesh-x" not in err


def test_in_kept_logs() -> None:
    assert up_cli.in_kept_logs("see /m/logs/a.log, /m/logs/b.log; /m/logsx", "/m/logs",
                               Path("/k")) == "see /k/a.log, /k/b.log; /m/logsx"
    assert up_cli.in_kept_logs("see /m/logs/a.log", "/m/logs", None) == "see /m/logs/a.log"


def test_child_names() -> None:
    assert up_children.child_names({"planner": "a", "planner-1": "b"}, {"worker-0": "c"}, 1) == [
        "gateway", "planner", "planner-1", "worker-0", "engine-0"]
    assert up_children.child_names({"planner": "a"}, {"worker-0": "c"}, 0) == [
        "gateway", "planner", "worker-0"]  # --engine sglang: the workers' own engines


# fatal_exit: rows of statuses (None: running) and what stops the mesh ("": it goes on).
FATAL = [
    ({"gateway": None, "planner": None, "worker-0": 1}, ["planner"], ""),
    ({"gateway": 0, "planner": None}, ["planner"], "gateway"),
    ({"gateway": None, "planner": -15}, ["planner"], "planner"),
    ({"gateway": None, "planner": 1, "planner-1": None}, ["planner", "planner-1"], ""),
    ({"gateway": None, "planner": 1, "planner-1": 3}, ["planner", "planner-1"], "planner"),
]


@pytest.mark.parametrize(("codes", "planners", "fatal"), FATAL)
def test_fatal_exit(codes: dict[str, int | None], planners: list[str], fatal: str) -> None:
    assert up_children.fatal_exit(codes, planners) == fatal


def test_the_last_worker_gone_says_calls_wait() -> None:
    """(operator review F10) Not "calls go to the other workers" when there are none."""
    before = {"gateway": None, "planner": None, "worker-0": None, "engine-0": None}
    assert up_children.exit_lines(before, {**before, "worker-0": -9}, stopping=False) == [
        "worker-0 exited (killed by SIGKILL); the mesh goes on without it: the planner drops it "
        "(planner.worker_ttl_s) and no worker is left to serve calls: they queue until they "
        "time out (gateway.call_timeout_s); restart the mesh"]
    two = {**before, "worker-1": None, "engine-1": None}
    gone = {**two, "engine-1": 1}  # worker-1 has no engine left: worker-0 is the last
    assert up_children.exit_lines(gone, {**gone, "worker-0": -9}, stopping=False)[0].endswith(
        "no worker is left to serve calls: they queue until they time out "
        "(gateway.call_timeout_s); restart the mesh")
    assert up_children.exit_lines(two, {**two, "engine-0": 1}, stopping=False)[0].endswith(
        "worker-0 fails its health probe and calls go to the other workers")


def test_exit_lines_report_each_exit_once() -> None:
    before = {"gateway": None, "planner": None, "planner-1": None, "worker-0": 2}
    now = {"gateway": None, "planner": None, "planner-1": 0, "worker-0": 2}
    assert up_children.exit_lines(before, now, stopping=False) == [
        "planner-1 exited with status 0; the mesh goes on with the other planner replicas"]
    assert up_children.exit_lines(now, now, stopping=False) == []
    assert up_children.exit_lines(before, {**now, "gateway": -99}, stopping=True) == [
        "gateway exited (killed by signal 99); stopping the mesh",
        "planner-1 exited with status 0; stopping the mesh"]


# lease_lost: the planner replicas `up` starts again (a status 3 just seen), by statuses
# before and now (None: running)
LEASE_LOST = [
    ({"planner": None, "planner-1": None}, {"planner": 3, "planner-1": None}, ["planner"]),
    ({"planner": None, "planner-1": None}, {"planner": 3, "planner-1": 3}, ["planner", "planner-1"]),
    ({"planner": None, "planner-1": None}, {"planner": 1, "planner-1": -9}, []),  # crashes: not
    ({"planner": 3, "planner-1": None}, {"planner": 3, "planner-1": None}, []),  # seen before
    ({"gateway": None}, {"gateway": 3}, []),  # not a planner
]


@pytest.mark.parametrize(("before", "now", "again"), LEASE_LOST)
def test_a_planner_that_lost_its_lease_is_started_again(
        before: dict[str, int | None], now: dict[str, int | None], again: list[str]) -> None:
    """Fault review 2026-12-06: each Redis stall past the lease's TTL took an HA replica for
    good (nobody started it again, as a supervisor must: planner/lease.py), and the second
    stopped the mesh."""
    assert up_children.lease_lost(before, now, ["planner", "planner-1"]) == again


class _Mesh:
    """respawn/ready/child of Mesh: `serves_after` looks at `ready` before it says so."""

    def __init__(self, fails: bool = False, serves_after: int = 1) -> None:
        self.fails, self.serves_after, self.looks = fails, serves_after, 0
        self.respawned: list[str] = []
        self.killed: list[str] = []

    def redis_serving(self) -> bool:  # at the next look
        return True

    def respawn(self, name: str) -> None:
        self.respawned.append(name)
        if self.fails:
            raise RuntimeError(f"{name} is still running")

    def ready(self, name: str) -> bool:
        self.looks += 1
        return self.looks >= self.serves_after

    def child(self, name: str) -> Any:
        mesh = self

        class _Killable:
            def kill(self) -> None:
                mesh.killed.append(name)
        return _Killable()


def test_a_standby_that_cannot_be_spawned_is_counted_exited(
        capsys: pytest.CaptureFixture[str]) -> None:
    standbys = up_children.Standbys(_Mesh(fails=True), clock=lambda: 0.0)
    assert standbys.start("planner-1") == 3 and standbys.starting == {}
    assert "could not be started again: planner-1 is still running" in capsys.readouterr().err


# Standbys.check, looks after the start: (statuses seen each look, when it serves, the
# clock each look) -> what `up` says and whether the replica was killed. The loop goes on
# between looks (before: it waited in the restart up to 30 s).
STARTS = [
    ([None, None], 2, [1.0, 2.0], "started again as a standby", False),
    ([None, 3], 9, [1.0, 2.0], "could not be started again: exited with status 3 while "
     "starting", False),
    ([None, None], 9, [1.0, 31.0], "could not be started again: not serving within 30 s "
     "(killed)", True),
]


@pytest.mark.parametrize(("statuses", "serves_after", "times", "said", "killed"), STARTS)
def test_a_standby_starts_while_the_loop_goes_on(
        statuses: list[int | None], serves_after: int, times: list[float], said: str,
        killed: bool, capsys: pytest.CaptureFixture[str]) -> None:
    mesh, clock = _Mesh(serves_after=serves_after), iter([0.0, *times])
    standbys = up_children.Standbys(mesh, clock=lambda: next(clock))
    assert standbys.start("planner-1") is None and mesh.respawned == ["planner-1"]
    for status in statuses:
        assert standbys.starting, "still starting at this look"
        standbys.check({"planner-1": status})
    assert standbys.starting == {}
    err = capsys.readouterr().err
    assert err.count("ostinato up: planner-1 lost its lease") == 1 and said in err
    assert mesh.killed == (["planner-1"] if killed else [])
