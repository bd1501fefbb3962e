"""`ostinato up` (ostinato/up_cli.py) without starting a mesh: the config it runs, what it
refuses before anything starts (exit 2), and what it says when one of its services exits.
Mesh is replaced by a fake wherever `run` is called."""

from __future__ import annotations

import contextlib
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ostinato import cli, up_cli
from ostinato.cli import _parse
from ostinato.cli_overrides import merge
from ostinato.config import ConfigError, load_mesh_config
from tests.ostinato.up_cli_env import no_mesh_environment  # noqa: F401 (autouse)

# The planner's port: a free one unless the file, the environment or the flag sets it (the
# flag's default of 0 used to override the other two). Rows: file text, environment, flags,
# the port.
PLANNER_PORTS = [
    ("", {}, [], 0),
    ("planner: {port: 45157}\n", {}, [], 45157),
    ("", {"OSTINATO_PLANNER__PORT": "45158"}, [], 45158),
    ("planner: {port: 45157}\n", {"OSTINATO_PLANNER__PORT": "45158"}, [], 45158),
    ("planner: {port: 45157}\n", {"OSTINATO_PLANNER__PORT": "45158"},
     ["--planner-port", "45159"], 45159),
    ("planner: {port: 45157}\n", {}, ["--planner-port", "0"], 0),
    ("planner: {policy: fcfs+round_robin}\n", {}, [], 0),  # the section, not the port
]


@pytest.mark.parametrize(("text", "env", "flags", "port"), PLANNER_PORTS)
def test_the_planner_port_is_free_unless_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             text: str, env: dict[str, str], flags: list[str],
                                             port: int) -> None:
    f = tmp_path / "mesh.yaml"
    f.write_text(text)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert up_cli.load_up_config(_parse(["up", "--config", str(f), *flags])).planner.port == port


# The first worker's and sim engine's ports alike (worker.port in the file was ignored).
BASE_PORTS = [
    ("", {}, [], (0, 0)),
    ("worker: {port: 46100}\nsim_engine: {port: 46200}\n", {}, [], (46100, 46200)),
    ("", {"OSTINATO_WORKER__PORT": "46101", "OSTINATO_SIM_ENGINE__PORT": "46201"}, [],
     (46101, 46201)),
    ("worker: {port: 46100}\n", {"OSTINATO_WORKER__PORT": "46101"},
     ["--worker-base-port", "46102", "--engine-base-port", "46202"], (46102, 46202)),
    ("worker: {port: 46100}\nsim_engine: {port: 46200}\n", {},
     ["--worker-base-port", "0", "--engine-base-port", "0"], (0, 0)),
    ("worker: {metrics_port: 9100}\n", {}, [], (0, 0)),  # the section, not the port
]


@pytest.mark.parametrize(("text", "env", "flags", "ports"), BASE_PORTS)
def test_worker_and_engine_ports_are_free_unless_set(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, env: dict[str, str],
        flags: list[str], ports: tuple[int, int]) -> None:
    f = tmp_path / "mesh.yaml"
    f.write_text(text)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    cfg = up_cli.load_up_config(_parse(["up", "--config", str(f), *flags]))
    assert (cfg.worker.port, cfg.sim_engine.port) == ports


def test_the_planner_ports_default_is_still_the_services_own() -> None:
    """`ostinato planner` alone (and every other command) keeps planner.port's 50052, as
    `ostinato worker` and `sim-engine` keep theirs."""
    cfg = load_mesh_config(None, environ={})
    assert (cfg.planner.port, cfg.worker.port, cfg.sim_engine.port) == (50052, 50061, 30000)


FREE_GATEWAY = {"gateway": {"port": 0, "http_port": 0}}  # not 50051 and 8080, maybe held here

# What `up` alone refuses: rows of overrides and the message.
UP_REFUSES = [
    ({"planner": {"port": 65535}, "planner_replicas": 2},
     r"^planner\.port: ostinato up gives the i-th of 2 services port 65535\+i, past 65535$"),
    ({"planner": {"metrics_port": 65535}, "planner_replicas": 2}, r"^planner\.metrics_port: "),
    ({"worker": {"metrics_port": 65534}, "workers": 3}, r"^worker\.metrics_port: .* 3 services"),
    ({"worker": {"port": 65535}, "workers": 2}, r"^worker\.port: .* 2 services port 65535\+i"),
    ({"sim_engine": {"port": 65534}, "workers": 3}, r"^sim_engine\.port: .* 3 services"),
    ({"worker": {"engine": "sglang", "engine_model": "/m", "engine_port": 30000}, "workers": 2},
     r"^worker\.engine_port: each of the 2 workers would launch its SGLang server on it"),
    ({"redis": {"server": "/no/such/redis-server"}},
     r"^redis\.server: no executable file '/no/such/redis-server'"),
    ({"redis": {"server": "no-such-redis-server-on-path"}}, r"^redis\.server: "),
]


@pytest.mark.parametrize(("overrides", "message"), UP_REFUSES)
def test_up_refuses_what_its_children_could_not_run(overrides: dict[str, Any],
                                                    message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        up_cli.check_up_config(load_mesh_config(None, environ={}, overrides=merge(
            FREE_GATEWAY, overrides)))


@pytest.mark.parametrize("overrides", [
    {},
    {"planner": {"port": 65534, "metrics_port": 9100}, "planner_replicas": 2},
    {"worker": {"metrics_port": 9100}, "workers": 8},  # worker i on 9100 + i
    {"worker": {"metrics_port": -1}, "workers": 8},
    {"worker": {"engine": "sglang", "engine_model": "/m", "engine_port": 30000}, "workers": 1},
    {"redis": {"server": sys.executable}},  # an executable file
    {"redis": {"server": "/no/such/redis-server", "url": "redis://127.0.0.1:6379"}},  # unused
])
def test_up_takes(overrides: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(up_cli, "_check_port_free", lambda *_, **__: None)  # maybe held here
    up_cli.check_up_config(load_mesh_config(None, environ={}, overrides=merge(
        FREE_GATEWAY, overrides)))


def test_a_host_that_does_not_resolve_is_not_called_a_port_in_use() -> None:
    with pytest.raises(ConfigError, match=r"^gateway\.host: 'not-a-host\.invalid' does not "
                                          r"resolve \("):
        up_cli._check_host("not-a-host.invalid", "gateway.host")
    up_cli._check_host("127.0.0.1", "gateway.host")


def test_a_port_in_use_is_not_free() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"^gateway\.port: 127\.0\.0\.1:{port} is not free "
                                              r"\(.*another mesh\?"):
            up_cli._check_port_free("127.0.0.1", port, "gateway.port")


# The fixed ports behind the gateway `up` checks: rows of overrides and (field, host, first
# port, how many).
FIXED_PORTS = [
    ({}, []),
    ({"planner": {"port": 47000, "metrics_port": 9200}, "planner_replicas": 2},
     [("planner.port", "127.0.0.1", 47000, 2), ("planner.metrics_port", "127.0.0.1", 9200, 2)]),
    ({"worker": {"port": 47100, "metrics_port": -1}, "sim_engine": {"port": 47200},
      "workers": 3},
     [("worker.port", "127.0.0.1", 47100, 3), ("sim_engine.port", "127.0.0.1", 47200, 3)]),
    # launched SGLang servers: no sim engines; engine_port (one worker only)
    ({"worker": {"engine": "sglang", "engine_model": "/m", "engine_port": 31000},
      "sim_engine": {"port": 47200}, "workers": 1},
     [("worker.engine_port", "127.0.0.1", 31000, 1)]),
]


@pytest.mark.parametrize(("overrides", "ports"), FIXED_PORTS)
def test_fixed_internal_ports(overrides: dict[str, Any],
                              ports: list[tuple[str, str, int, int]]) -> None:
    cfg = load_mesh_config(None, environ={}, overrides=merge(FREE_GATEWAY, overrides),
                           defaults=up_cli.UP_DEFAULTS)
    assert up_cli.fixed_internal_ports(cfg) == ports


@pytest.mark.parametrize(("section", "field", "count", "held_index"), [
    ("planner", "port", 1, 0),
    ("planner", "port", 2, 1),  # the second replica's
    ("planner", "metrics_port", 1, 0),
    ("worker", "port", 2, 1),
    ("worker", "metrics_port", 1, 0),
    ("sim_engine", "port", 2, 1),
    ("gateway", "metrics_port", 1, 0),
])
def test_a_fixed_internal_port_in_use_is_refused_naming_its_field(
        section: str, field: str, count: int, held_index: int) -> None:
    """A busy planner, worker, engine or metrics port was a child's traceback once part of
    the mesh had started (operator review F7)."""
    with _held(free_before=held_index) as port:
        counts = {"planner_replicas": count} if section == "planner" else {"workers": count}
        cfg = load_mesh_config(None, environ={}, defaults=up_cli.UP_DEFAULTS, overrides=merge(
            FREE_GATEWAY, counts, {section: {field: port - held_index}}))
        index = f" \\+ {held_index}" if held_index else ""
        with pytest.raises(ConfigError, match=rf"^{section}\.{field}{index}: 127\.0\.0\.1:{port} "
                                              r"is not free \(.*another mesh\?"):
            up_cli.check_up_config(cfg)


@contextlib.contextmanager
def _held(free_before: int) -> Iterator[int]:
    """A loopback port held (listening) whose `free_before` ports below it are free."""
    for _ in range(50):
        with socket.socket() as held:
            held.bind(("127.0.0.1", 0))
            held.listen()
            port = held.getsockname()[1]
            try:
                for below in range(port - free_before, port):
                    with socket.socket() as probe:
                        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                        probe.bind(("127.0.0.1", below))
            except OSError:
                continue
            yield port
            return
    raise AssertionError("no held port with free ones below it")


def test_a_busy_planner_port_is_exit_2_naming_the_flag_or_variable(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import ostinato.mesh

    monkeypatch.setattr(ostinato.mesh, "Mesh", _Refused)
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = str(held.getsockname()[1])
        monkeypatch.setenv("OSTINATO_PLANNER__PORT", port)
        rc = cli.main(["up", "--gateway-port", "0", "--http-port", "0"])
    err = capsys.readouterr().err
    assert rc == 2 and err == (f"ostinato up: configuration error: planner.port: 127.0.0.1:{port} "
                               "is not free (Address already in use; another mesh? 0 picks a "
                               "free port) (from OSTINATO_PLANNER__PORT)\n")


def test_a_data_dir_another_embedded_redis_runs_on_is_refused(tmp_path: Path) -> None:
    """(operator review F2) Before anything starts; an external Redis's data_dir is unused.
    Loaded as `up` loads it (its defaults: free internal ports, none that may be held here)."""
    from cache.redis_server import DataDirLock

    def check(redis: dict[str, str]) -> None:
        up_cli.check_up_config(load_mesh_config(None, environ={}, defaults=up_cli.UP_DEFAULTS,
                                                overrides=merge(FREE_GATEWAY, {"redis": redis})))

    lock = DataDirLock(tmp_path)
    lock.acquire()
    try:
        with pytest.raises(ConfigError, match=rf"^redis\.data_dir: {tmp_path} is in use by "
                                              r"another embedded Redis \(process \d+; another "
                                              r"mesh\?\)$"):
            check({"data_dir": str(tmp_path)})
        check({"data_dir": str(tmp_path), "url": "redis://127.0.0.1:1/0"})
    finally:
        lock.release()
    check({"data_dir": str(tmp_path)})
    check({"data_dir": str(tmp_path / "not yet")})


def test_an_address_not_of_this_host_cannot_be_bound() -> None:
    with pytest.raises(ConfigError, match=r"^gateway\.port: cannot bind 192\.0\.2\.1:50051 \("):
        up_cli._check_port_free("192.0.2.1", 50051, "gateway.port")  # TEST-NET-1


class _Refused:
    def __init__(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("a refused configuration must start nothing")


# `ostinato up` with each of these exits 2 with a configuration error before anything
# starts (they crashed a child, or printed a traceback, or a wrong reason, after starting).
# Rows: environment, flags, what stderr says.
UP_EXITS_2 = [
    ({"OSTINATO_GATEWAY__API_KEYS": "abcdefghij=a/b"}, [],
     "gateway.api_keys: tenant names are 1-64 characters"),
    ({"OSTINATO_PLANNER__TENANT_WEIGHTS": "acme=abc"}, [],
     "planner.tenant_weights: the weight of tenant 'acme' must be a number from 1e-06 to 1e+06"),
    ({"OSTINATO_PLANNER__TENANT_WEIGHTS": "acme=-3"}, [], "planner.tenant_weights: "),
    ({"OSTINATO_SIM_ENGINE__SCHEDULE_POLICY": "bogus"}, [],
     "sim_engine: schedule_policy must be fcfs or lpm"),
    ({"OSTINATO_SIM_ENGINE__PROFILE": "no-such-profile"}, [],
     "sim_engine.profile: unknown profile 'no-such-profile'"),
    ({}, ["--policy", "clairvoyant"], "planner.policy: 'clairvoyant' needs every program's"),
    ({"OSTINATO_REDIS__SERVER": "/no/such/redis-server"}, [],
     "redis.server: no executable file '/no/such/redis-server'"),
    ({"OSTINATO_GATEWAY__HOST": "not-a-host.invalid"}, [],
     "gateway.host: 'not-a-host.invalid' does not resolve"),
    ({"OSTINATO_WORKER__HEARTBEAT_S": "15"}, [],
     "worker.heartbeat_s (15) must be less than planner.worker_ttl_s (10)"),
    ({"OSTINATO_GATEWAY__BOGUS": "1"}, [], "unknown field in gateway: bogus (from "
     "OSTINATO_GATEWAY__BOGUS)"),
]


@pytest.mark.parametrize(("env", "flags", "message"), UP_EXITS_2)
def test_up_refuses_a_bad_configuration_before_anything_starts(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        env: dict[str, str], flags: list[str], message: str) -> None:
    import ostinato.mesh

    monkeypatch.setattr(ostinato.mesh, "Mesh", _Refused)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    rc = cli.main(["up", "--gateway-port", "0", "--http-port", "0", *flags])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith(f"ostinato up: configuration error: {message}"), err
    assert "Traceback" not in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(("env", "flags", "suffix"), [
    ({"OSTINATO_REDIS__SERVER": "/no/such"}, [], " (from OSTINATO_REDIS__SERVER)"),
    ({"OSTINATO_GATEWAY__HOST": "not-a-host.invalid"}, [], " (from OSTINATO_GATEWAY__HOST)"),
    ({"OSTINATO_GATEWAY__PORT": "{held}"}, [], " (from OSTINATO_GATEWAY__PORT)"),
    ({"OSTINATO_GATEWAY__PORT": "{held}"}, ["--gateway-port", "{held}"], ")"),  # the flag's
    ({}, ["--gateway-port", "{held}"], ")"),
])
def test_what_up_refuses_names_the_variable_that_set_it(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        env: dict[str, str], flags: list[str], suffix: str) -> None:
    import ostinato.mesh

    monkeypatch.setattr(ostinato.mesh, "Mesh", _Refused)
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = str(held.getsockname()[1])
        for name, value in env.items():
            monkeypatch.setenv(name, value.replace("{held}", port))
        rc = cli.main(["up", "--http-port", "0", *[f.replace("{held}", port) for f in flags]])
    err = capsys.readouterr().err
    assert rc == 2 and err.endswith(f"{suffix}\n") and err.count("(from ") == suffix.count("(from ")


@pytest.mark.parametrize(("argv", "message"), [
    # the simulated engines serve their own model: --model alone was dropped, unsaid
    (["--model", "/models/foo"], "--model PATH needs --engine sglang"),
    (["--engine", "sglang"], "--engine sglang needs --model PATH"),
])
def test_model_and_engine_sglang_go_together(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        up_cli.up_overrides(_parse(["up", *argv]))
