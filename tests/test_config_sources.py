"""Mesh configuration from several sources (file, OSTINATO_* variables, flags): later ones
win field by field, a bad value in an earlier one is still refused, and an error from the
environment names its variable (ostinato/config.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from ostinato.config import ConfigError, load_mesh_config

# A later source (OSTINATO_* variables, then flags) overriding a field or section does not hide
# a bad value in an earlier one: each source is checked as strictly as it is alone. Rows: the
# file's text, the environment, the overrides (flags), then the error naming the field.
OVERRIDDEN_BUT_BAD = [
    ("gateway: 5\n", {}, {"gateway": {"port": 51199}}, r"^gateway: expected a mapping, got 5$"),
    ("gateway: 5\n", {"OSTINATO_GATEWAY__PORT": "51199"}, {}, r"^gateway: expected a mapping"),
    ("gateway:\n", {}, {"gateway": {"port": 51199}}, r"^gateway: expected a mapping, got None"),
    ("gateway: {port: notanint}\n", {}, {"gateway": {"port": 51199}},
     r"^gateway\.port: expected an integer, got 'notanint'"),
    ("gateway: {port: 70000}\n", {}, {"gateway": {"port": 51199}}, r"^gateway\.port: a port is 0"),
    ("gateway: {bogus_key: 1}\n", {}, {"gateway": {"port": 51199}},
     r"^unknown field in gateway: bogus_key$"),
    ("gatewayy: {port: 1}\n", {}, {"gateway": {"port": 51199}}, r"^unknown field: gatewayy$"),
    ("gateway: {allow_anonymous: maybe}\n", {}, {"gateway": {"allow_anonymous": True}},
     r"^gateway\.allow_anonymous: expected true or false"),
    ("gateway: {max_prompt_chars: -5}\n", {"OSTINATO_GATEWAY__MAX_PROMPT_CHARS": "100"}, {},
     r"^gateway\.max_prompt_chars: must be positive, got -5"),
    ("planner: {policy: nosuch+thing}\n", {}, {"planner": {"policy": "fcfs+round_robin"}},
     r"^planner\.policy: unknown policy 'nosuch\+thing'"),
    ("workers: -1\n", {}, {"workers": 3}, r"^workers: must be at least 1$"),
    ("telemetry: {traces: jaeger}\n", {"OSTINATO_TELEMETRY__TRACES": "console"}, {},
     r"^telemetry\.traces: unknown exporter 'jaeger'"),
    ("redis: {url: notaurl}\n", {}, {"redis": {"url": "redis://127.0.0.1:6379"}}, r"^redis\.url: "),
    # the environment's values, overridden by flags, are checked the same way
    ("", {"OSTINATO_GATEWAY__PORT": "abc"}, {"gateway": {"port": 1}},
     r"^gateway\.port: expected an integer, got 'abc'"),
    ("", {"OSTINATO_GATEWAY": "5"}, {"gateway": {"port": 1}}, r"^gateway: expected a mapping"),
    ("", {"OSTINATO_GATEWAY": "5", "OSTINATO_GATEWAY__PORT": "1"}, {}, r"^OSTINATO_GATEWAY"),
    ("", {"OSTINATO_GATEWAY__PORT": "1", "OSTINATO_GATEWAY": "5"}, {}, r"^OSTINATO_GATEWAY"),
]


@pytest.mark.parametrize(("text", "env", "overrides", "message"), OVERRIDDEN_BUT_BAD)
def test_an_overridden_bad_value_is_still_refused(
        tmp_path: Path, text: str, env: dict[str, str], overrides: dict, message: str) -> None:
    f = tmp_path / "mesh.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_mesh_config(f, environ=env, overrides=overrides)


# Valid sources: later ones win field by field. Rows: file, environment, overrides, then a field
# and its value in the merged config.
OVERRIDES_WIN = [
    ("gateway: {port: 1000, http_port: 9000}\n", {}, {"gateway": {"port": 51199}},
     "gateway.port", 51199),
    ("gateway: {port: 1000, http_port: 9000}\n", {}, {"gateway": {"port": 51199}},
     "gateway.http_port", 9000),
    ("gateway: {port: 1000}\n", {"OSTINATO_GATEWAY__PORT": "2000"}, {}, "gateway.port", 2000),
    ("gateway: {port: 1000}\n", {"OSTINATO_GATEWAY__PORT": "2000"}, {"gateway": {"port": 3000}},
     "gateway.port", 3000),
    ("workers: 3\n", {"OSTINATO_WORKERS": "4"}, {"workers": 5}, "workers", 5),
    ("planner: {policy: fcfs+least_load}\n", {}, {"planner": {"policy": "srpt+affinity"}},
     "planner.policy", "srpt+affinity"),
    # values complete only together, from different sources
    ("gateway: {tls_cert_file: /c.pem, port: 1000}\n", {"OSTINATO_GATEWAY__TLS_KEY_FILE": "/k.pem"},
     {"gateway": {"port": 2000}}, "gateway.tls_key_file", "/k.pem"),
    ("telemetry: {traces: file}\n", {}, {"telemetry": {"trace_file": "/t.jsonl"}},
     "telemetry.trace_file", "/t.jsonl"),
    # pairs valid in each source, whose halves do not fit the other source's
    ("gateway: {default_max_new_tokens: 20000, max_new_tokens_limit: 30000}\n", {},
     {"gateway": {"default_max_new_tokens": 100, "max_new_tokens_limit": 1000}},
     "gateway.max_new_tokens_limit", 1000),
    ("planner: {starvation_min_s: 10, starvation_max_s: 20}\n",
     {"OSTINATO_PLANNER__STARVATION_MIN_S": "30", "OSTINATO_PLANNER__STARVATION_MAX_S": "60"}, {},
     "planner.starvation_max_s", 60.0),
    ("gateway: {tls_cert_file: /c.pem, tls_key_file: /k.pem}\n",
     {"OSTINATO_GATEWAY__TLS_CERT_FILE": "", "OSTINATO_GATEWAY__TLS_KEY_FILE": ""}, {},
     "gateway.tls_cert_file", ""),
    # a mapping field is one value: the later source's replaces it
    ("gateway: {api_keys: {key-acme-1: acme}}\n", {"OSTINATO_GATEWAY__API_KEYS": "key-beta-1=beta"},
     {}, "gateway.api_keys", {"key-beta-1": "beta"}),
]


@pytest.mark.parametrize(("text", "env", "overrides", "where", "value"), OVERRIDES_WIN)
def test_later_sources_win_over_valid_values(tmp_path: Path, text: str, env: dict[str, str],
                                             overrides: dict, where: str, value: object) -> None:
    f = tmp_path / "mesh.yaml"
    f.write_text(text)
    got: object = load_mesh_config(f, environ=env, overrides=overrides)
    for part in where.split("."):
        got = getattr(got, part)
    assert (dict(got) if isinstance(got, Mapping) else got) == value


@pytest.mark.parametrize(("text", "argv", "env", "message"), [
    ("gateway: 5\n", ["up", "--gateway-port", "0", "--http-port", "0"], {},
     "gateway: expected a mapping, got 5"),
    ("gateway: {port: notanint}\n", ["gateway", "--port", "0"], {},
     "gateway.port: expected an integer, got 'notanint'"),
    ("planner: {policy: nosuch+thing}\n", ["planner", "--policy", "fcfs+round_robin", "--port", "0"],
     {}, "planner.policy: unknown policy 'nosuch+thing'"),
    ("worker: {max_inflight: nope}\n", ["worker", "--max-inflight", "4", "--port", "0"], {},
     "worker.max_inflight: expected an integer, got 'nope'"),
    ("sim_engine: {time_scale: fast}\n", ["sim-engine", "--time-scale", "0.1", "--port", "0"], {},
     "sim_engine.time_scale: expected a number, got 'fast'"),
    ("gateway: {port: 70000}\n", ["gateway"], {"OSTINATO_GATEWAY__PORT": "0"},
     "gateway.port: a port is 0..65535"),
    # a planner run alone with no Redis (docs review 2026-12-06: a traceback, exit 1)
    ("planner: {port: 0}\n", ["planner"], {},
     "the planner needs a Redis: --redis-url, redis.url in --config or OSTINATO_REDIS__URL"),
])
def test_every_command_refuses_an_overridden_bad_value(
        tmp_path: Path, text: str, argv: list[str], env: dict[str, str], message: str) -> None:
    """The operator's walkthrough: each started with the file's section dropped, exit 2 now."""
    f = tmp_path / "mesh.yaml"
    f.write_text(text)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OSTINATO_")}
    out = subprocess.run([sys.executable, "-m", "ostinato.cli", *argv, "--config", str(f)],
                         capture_output=True, text=True, timeout=30, env={**environ, **env})
    assert out.returncode == 2, out.stderr[-2000:]
    assert f"configuration error: {message}" in out.stderr


# An error in a value from the environment names the variable. Rows: the file's text, the
# environment, the overrides (flags), then the whole message.
NAMES_THE_VARIABLE = [
    ("", {"OSTINATO_GATEWAY__BOGUS": "1"}, {},
     "unknown field in gateway: bogus (from OSTINATO_GATEWAY__BOGUS)"),
    ("", {"OSTINATO_BOGUS": "1"}, {}, "unknown field: bogus (from OSTINATO_BOGUS)"),
    ("", {"OSTINATO_GATEWAY__PORT": "abc"}, {},
     "gateway.port: expected an integer, got 'abc' (from OSTINATO_GATEWAY__PORT)"),
    ("", {"OSTINATO_GATEWAY": "5"}, {},
     "gateway: expected a mapping, got '5' (from OSTINATO_GATEWAY)"),
    ("", {"OSTINATO_PLANNER__WORKER_TTL_S": "0"}, {},
     "planner.worker_ttl_s: must be positive, got 0.0 (from OSTINATO_PLANNER__WORKER_TTL_S)"),
    ("", {"OSTINATO_WORKERS": "0"}, {}, "workers: must be at least 1 (from OSTINATO_WORKERS)"),
    ("", {"OSTINATO_SIM_ENGINE__SCHEDULE_POLICY": "bogus"}, {},
     "sim_engine: schedule_policy must be fcfs or lpm, got 'bogus' "
     "(from OSTINATO_SIM_ENGINE__SCHEDULE_POLICY)"),
    ("", {"OSTINATO_PLANNER__STARVATION_MIN_S": "-1"}, {},
     "planner.starvation_ratio and starvation_min_s: must be >= 0 "
     "(from OSTINATO_PLANNER__STARVATION_MIN_S)"),
    # a cross-section check: the variable that set one of its fields
    ("", {"OSTINATO_WORKER__HEARTBEAT_S": "15"}, {},
     "worker.heartbeat_s (15) must be less than planner.worker_ttl_s (10): the planner drops a "
     "worker it has not heard from for worker_ttl_s (from OSTINATO_WORKER__HEARTBEAT_S)"),
    ("", {"OSTINATO_GATEWAY__CALL_TIMEOUT_S": "1200"}, {},
     "gateway.call_timeout_s (1200) must be at most worker.engine_timeout_s (600): a worker "
     "cuts each engine request at engine_timeout_s, inside the call's own deadline; raise "
     "both (from OSTINATO_GATEWAY__CALL_TIMEOUT_S)"),
    # the environment's value is refused even where a flag overrides it
    ("", {"OSTINATO_PLANNER__WORKER_TTL_S": "0"}, {"planner": {"worker_ttl_s": 5}},
     "planner.worker_ttl_s: must be positive, got 0.0 (from OSTINATO_PLANNER__WORKER_TTL_S)"),
    # ... and a value the environment did not give is not blamed on it
    ("", {"OSTINATO_PLANNER__WORKER_TTL_S": "5"}, {"planner": {"worker_ttl_s": 0}},
     "planner.worker_ttl_s: must be positive, got 0.0"),
    ("planner: {worker_ttl_s: 0}\n", {"OSTINATO_PLANNER__WORKER_TTL_S": "5"}, {},
     "planner.worker_ttl_s: must be positive, got 0.0"),
    ("planner: {worker_ttl_s: 0}\n", {"OSTINATO_PLANNER__PORT": "5"}, {},
     "planner.worker_ttl_s: must be positive, got 0.0"),
]


@pytest.mark.parametrize(("text", "env", "overrides", "message"), NAMES_THE_VARIABLE)
def test_an_error_from_the_environment_names_the_variable(
        tmp_path: Path, text: str, env: dict[str, str], overrides: dict, message: str) -> None:
    f = tmp_path / "mesh.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_mesh_config(f, environ=env, overrides=overrides)
    assert str(caught.value) == message


@pytest.mark.parametrize("name", ["OSTINATO_LOG_LEVEL", "OSTINATO_LOG_JSON",
                                  "OSTINATO_REDIS8_SERVER", "OSTINATO_TEST_ANYTHING",
                                  "OSTINATO_API_KEY"])
def test_variables_that_are_not_config_fields_are_not_refused(name: str) -> None:
    """OSTINATO_REDIS8_SERVER, which cache/redis_server.py reads, made every command refuse
    to start as an unknown field (operator review F6)."""
    assert load_mesh_config(None, environ={name: "x"}) == load_mesh_config(None, environ={})


@pytest.mark.parametrize(("name", "field"), [("OSTINATO_LOG_LEVLE", "log_levle"),
                                             ("OSTINATO_REDIS8_SERVERS", "redis8_servers")])
def test_a_misspelt_one_is_still_an_unknown_field(name: str, field: str) -> None:
    with pytest.raises(ConfigError, match=rf"^unknown field: {field} \(from {name}\)$"):
        load_mesh_config(None, environ={name: "x"})
