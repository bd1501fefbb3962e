"""Mesh configuration: file, environment, validation errors that name the field."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pytest

from ostinato.config import ConfigError, load_mesh_config


def test_defaults_file_env_and_overrides(tmp_path: Path) -> None:
    f = tmp_path / "mesh.yaml"
    f.write_text("workers: 3\nplanner:\n  policy: fcfs+least_load\n"
                 "gateway:\n  api_keys: {key-acme-1: acme}\n")
    cfg = load_mesh_config(f, environ={"OSTINATO_PLANNER__PORT": "6000",
                                       "OSTINATO_LOG_LEVEL": "debug"},
                           overrides={"gateway": {"port": 7000}})
    assert cfg.workers == 3 and cfg.planner.policy == "fcfs+least_load"
    assert cfg.planner.port == 6000 and cfg.gateway.port == 7000
    assert dict(cfg.gateway.api_keys) == {"key-acme-1": "acme"}
    assert cfg.worker.max_inflight == 16
    # anti-starvation bound in seconds: 4 x expected service, within [1 s, 60 s]
    p = cfg.planner
    assert (p.starvation_ratio, p.starvation_min_s, p.starvation_max_s) == (4.0, 1.0, 60.0)
    assert p.tenant_shares == "waiting"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"planner": {"polcy": "x"}}, "unknown field in planner: polcy"),
        ({"planner": {"port": "abc"}}, "planner.port: expected an integer"),
        ({"sim_engine": {"zero_cost": "maybe"}}, "sim_engine.zero_cost: expected true or false"),
        ({"workers": 0}, "workers: must be at least 1"),
        ({"gateway": "nope"}, "gateway: expected a mapping"),
        ({"planner": {"starvation_ratio": -1}}, "planner.starvation_ratio"),
        ({"planner": {"starvation_min_s": 10, "starvation_max_s": 5}},
         "planner.starvation_max_s: must be >= starvation_min_s"),
        ({"planner": {"tenant_shares": "strict"}}, "planner.tenant_shares"),
        ({"gateway": {"api_keys": {"short": "acme"}}}, "gateway.api_keys: keys must be at least 8"),
        # an example's placeholder left in (deploy review 2026-12-05 F5)
        ({"gateway": {"api_keys": {"CHANGE_ME-key-for-tenant-a": "a"}}}, "is an example's placeholder"),
        ({"gateway": {"api_keys": {"my-change-me-key": "a"}}}, "is an example's placeholder"),
        ({"gateway": {"api_keys": {"sk-Change_Me-123": "a"}}}, "is an example's placeholder"),
        # open mode's tenant of callers without a key (security review 2026-12-07)
        ({"gateway": {"api_keys": {"sk-owner-of-default": "default"}}},
         "gateway.api_keys: 'default' is the tenant of callers without a key"),
        ({"gateway": {"http_port": 99999}}, "gateway.http_port: a port is 0..65535"),
        ({"planner": {"port": -2}}, "planner.port: a port is 0..65535"),
        # -1 is "off" for the optional ports alone (gRPC took -1 for 65535)
        ({"gateway": {"port": -1}}, r"gateway.port: a port is 0..65535 \(0: a free one\), got -1"),
        ({"planner": {"port": -1}}, "planner.port: a port is 0..65535"),
        ({"worker": {"port": -1}}, "worker.port: a port is 0..65535"),
        ({"worker": {"engine_port": -1}}, "worker.engine_port: a port is 0..65535"),
        ({"sim_engine": {"port": -1}}, "sim_engine.port: a port is 0..65535"),
        ({"planner": {"policy": "nosuch+x"}}, "planner.policy: unknown policy"),
        ({"planner": {"starvation_ratio": "nan"}}, "planner.starvation_ratio: expected a finite"),
        ({"planner": {"conversation_kv_idle_s": -1}}, "conversation_kv_idle_s: must be >= 0"),
        # sizes and limits that mean nothing at or below zero (a mesh that refused every call)
        ({"gateway": {"max_prompt_chars": -5}}, "gateway.max_prompt_chars: must be positive, got -5"),
        ({"gateway": {"max_new_tokens_limit": 0}}, "gateway.max_new_tokens_limit: must be positive"),
        ({"gateway": {"max_messages": 0}}, "gateway.max_messages: must be positive"),
        ({"gateway": {"call_timeout_s": 0}}, "gateway.call_timeout_s: must be positive"),
        ({"gateway": {"max_inflight_calls": -1}}, "gateway.max_inflight_calls: must be >= 0"),
        ({"gateway": {"default_max_new_tokens": 600, "max_new_tokens_limit": 512}},
         r"gateway.default_max_new_tokens: must be at most max_new_tokens_limit \(512\)"),
        ({"planner": {"max_queued_calls": -1}}, "planner.max_queued_calls: must be >= 0"),
        ({"planner": {"worker_ttl_s": 0}}, "planner.worker_ttl_s: must be positive"),
        ({"worker": {"max_inflight": 0}}, "worker.max_inflight: must be positive"),
        ({"worker": {"engine_connect_retries": 0}}, "worker.engine_connect_retries: must be positive"),
        ({"sim_engine": {"max_total_tokens": -1}}, "sim_engine.max_total_tokens: must be >= 0"),
        ({"redis": {"url": "notaurl"}}, "redis.url: Redis URL must specify one of the following"),
        ({"redis": {"url": "redis://h:abc"}}, "redis.url: Port could not be cast"),
    ],
)
def test_invalid_config_names_the_field(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_mesh_config(None, environ={}, overrides=data)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_mesh_config(tmp_path / "nope.yaml", environ={})
    with pytest.raises(ConfigError, match="is a folder, not a config file"):
        load_mesh_config(tmp_path, environ={})


@pytest.mark.skipif(not Path("/dev/fd").is_dir(), reason="no /dev/fd here")
def test_a_pipe_is_a_config_file_read_once_for_every_load() -> None:
    """`ostinato up --config <(...)` (operator review 2026-12-05): a pipe is no regular file,
    and `up` loads its config twice (with --trace-file)."""
    read, write = os.pipe()
    try:
        os.write(write, b"workers: 3\n")
        os.close(write)
        path = f"/dev/fd/{read}"
        assert load_mesh_config(path, environ={}).workers == 3
        assert load_mesh_config(path, environ={}).workers == 3  # not an empty second read
    finally:
        os.close(read)


def test_a_file_that_is_not_yaml_is_a_config_error(tmp_path: Path) -> None:
    f = tmp_path / "mesh.yaml"
    f.write_text("gateway: [1,2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_mesh_config(f, environ={})


@pytest.mark.parametrize(("overrides", "needle"), [
    ({"gateway": {"tool_call_parser": "xml"}}, "gateway.tool_call_parser"),
    ({"sim_engine": {"tool_call_format": "json"}}, "sim_engine.tool_call_format"),
    ({"worker": {"engine": "vllm"}}, "worker.engine"),
    ({"worker": {"engine": "sglang"}}, "worker.engine_model"),
    ({"gateway": {"conversation_ttl_s": 0}}, "gateway.conversation_ttl_s"),
    ({"gateway": {"responses_ttl_s": -1}}, "gateway.responses_ttl_s"),
    ({"worker": {"engine_url": "notaurl"}}, "worker.engine_url"),  # the worker waited silently
    ({"worker": {"engine_url": "127.0.0.1:30000"}}, "worker.engine_url"),
    ({"worker": {"engine_url": "ftp://h:1"}}, "worker.engine_url"),
    ({"worker": {"engine_url": "http://h:99999"}}, "worker.engine_url"),
    ({"worker": {"engine_url": "http://:30000"}}, "worker.engine_url"),
    ({"gateway": {"reasoning_parser": "r1"}}, "gateway.reasoning_parser"),
    ({"sim_engine": {"reasoning_format": "o1"}}, "sim_engine.reasoning_format"),
    ({"worker": {"engine_reasoning_parser": "r1"}}, "worker.engine_reasoning_parser"),
    # gpt-oss's harmony carries the thinking and the calls: both formats or neither
    ({"gateway": {"reasoning_parser": "gpt-oss"}}, "is both formats or neither"),
    ({"gateway": {"tool_call_parser": "gpt-oss"}}, "is both formats or neither"),
    ({"sim_engine": {"tool_call_format": "gpt-oss"}}, "sim_engine.tool_call_format and sim_"),
])
def test_engine_and_tool_settings_are_checked(overrides: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        load_mesh_config(None, environ={}, overrides=overrides)


@pytest.mark.parametrize("url", ["http://127.0.0.1:30000", "https://engine.internal",
                                 "http://[::1]:30000/", "http://sglang-0.sglang:30000/prefix"])
def test_engine_urls_taken(url: str) -> None:
    assert load_mesh_config(None, environ={}, overrides={
        "worker": {"engine_url": url}}).worker.engine_url == url


def test_a_sim_mesh_needs_the_gateway_to_read_what_the_sim_model_writes() -> None:
    from ostinato.config import check_sim_mesh

    cfg = load_mesh_config(None, environ={}, overrides={"gateway": {"tool_call_parser": "llama3"}})
    with pytest.raises(ConfigError, match="tool_call_format"):
        check_sim_mesh(cfg)
    check_sim_mesh(load_mesh_config(None, environ={}, overrides={
        "gateway": {"tool_call_parser": "llama3"}, "sim_engine": {"tool_call_format": "llama3"}}))
    thinks = load_mesh_config(None, environ={}, overrides={"sim_engine": {"reasoning_format": "qwen3"}})
    with pytest.raises(ConfigError, match="reasoning_parser"):  # its thinking read as answer
        check_sim_mesh(thinks)
    check_sim_mesh(load_mesh_config(None, environ={}, overrides={
        "gateway": {"reasoning_parser": "qwen3"}, "sim_engine": {"reasoning_format": "qwen3"}}))


def test_an_sglang_mesh_launches_its_engines_with_the_gateways_reasoning_parser() -> None:
    """Else a launched SGLang applies a thinking model's grammar from the first token."""
    from ostinato.cli import _parse
    from ostinato.config import check_sglang_mesh
    from ostinato.up_cli import up_overrides

    sglang = {"engine": "sglang", "engine_model": "/m"}
    with pytest.raises(ConfigError, match=r"worker\.engine_reasoning_parser"):
        check_sglang_mesh(load_mesh_config(None, environ={}, overrides={
            "worker": sglang, "gateway": {"reasoning_parser": "qwen3"}}))
    args = _parse(["up", "--engine", "sglang", "--model", "/m", "--reasoning-parser", "qwen3"])
    cfg = load_mesh_config(None, environ={}, overrides=up_overrides(args))
    check_sglang_mesh(cfg)
    assert cfg.worker.engine_reasoning_parser == cfg.gateway.reasoning_parser == "qwen3"
    worker = _parse(["worker", "--engine", "sglang", "--model", "/m", "--reasoning-parser",
                     "deepseek-r1"])
    assert worker.reasoning_parser == "deepseek-r1"


@pytest.mark.parametrize("flags", [[], ["--tool-call-parser", "llama3"],
                                   ["--reasoning-parser", "deepseek-r1"],
                                   ["--tool-call-parser", "mistral", "--reasoning-parser", "qwen3"]])
def test_up_makes_the_sim_model_write_what_the_gateway_reads(flags: list[str]) -> None:
    """`ostinato up --tool-call-parser llama3` was a configuration error with sim engines."""
    from ostinato.cli import _parse
    from ostinato.config import check_sim_mesh
    from ostinato.up_cli import up_overrides

    args = _parse(["up", *flags])
    cfg = load_mesh_config(None, environ={}, overrides=up_overrides(args))
    check_sim_mesh(cfg)
    if "--reasoning-parser" in flags:
        assert cfg.gateway.reasoning_parser == flags[flags.index("--reasoning-parser") + 1]


# Values that got past the load and crashed a service after the mesh had started (traceback,
# exit 1); now refused at load, each by its field's name, with the rule the service applies.
REFUSED_AT_LOAD = [
    ({"gateway": {"api_keys": {"abcdefghij": "a/b"}}},
     r"^gateway\.api_keys: tenant names are 1-64 characters .*, got 'a/b'$"),
    ({"gateway": {"api_keys": {"abcdefghij": ""}}}, r"^gateway\.api_keys: tenant names .*got ''$"),
    ({"gateway": {"api_keys": {"abcdefghij": "x" * 65}}}, r"^gateway\.api_keys: tenant names"),
    ({"planner": {"tenant_weights": {"acme": "abc"}}},
     r"^planner\.tenant_weights: the weight of tenant 'acme' must be a number "
     r"from 1e-06 to 1e\+06, got 'abc'$"),
    ({"planner": {"tenant_weights": {"acme": "-3"}}}, r"^planner\.tenant_weights: .*got '-3'$"),
    ({"planner": {"tenant_weights": {"acme": "0"}}}, r"^planner\.tenant_weights: .*got '0'$"),
    ({"planner": {"tenant_weights": {"acme": "1e7"}}}, r"^planner\.tenant_weights: .*got '1e7'$"),
    ({"planner": {"tenant_weights": {"acme": "nan"}}}, r"^planner\.tenant_weights: .*got 'nan'$"),
    ({"planner": {"tenant_weights": {"acme": "inf"}}}, r"^planner\.tenant_weights: .*got 'inf'$"),
    ({"planner": {"tenant_weights": {"a/b": "2"}}},
     r"^planner\.tenant_weights: tenant names .*got 'a/b'$"),
    ({"sim_engine": {"schedule_policy": "bogus"}},
     r"^sim_engine: schedule_policy must be fcfs or lpm, got 'bogus'$"),
    ({"sim_engine": {"profile": "no-such-profile"}},
     r"^sim_engine\.profile: unknown profile 'no-such-profile'; built-in: \[.*'h100-llama3\.1-8b'"),
    ({"planner": {"policy": "clairvoyant"}},
     r"^planner\.policy: 'clairvoyant' needs every program's future work; it exists only in the "
     r"cluster simulator \(ostinato bench sim\)$"),
    # the choices it names are the planner's: none of the simulator's own
    ({"planner": {"policy": "oracle"}},
     r"^planner\.policy: unknown policy 'oracle': .*\['atlas', 'fcfs', .*\], or one of "
     r"\['default'\]$"),
    ({"planner": {"policy": "clairvoyant+round_robin"}}, r"^planner\.policy: 'clairvoyant'"),
    # the planner would forget every worker between two of its heartbeats
    ({"worker": {"heartbeat_s": 15}},
     r"^worker\.heartbeat_s \(15\) must be less than planner\.worker_ttl_s \(10\)"),
    ({"worker": {"heartbeat_s": 5}, "planner": {"worker_ttl_s": 5}},
     r"^worker\.heartbeat_s \(5\) must be less than planner\.worker_ttl_s \(5\)"),
    ({"worker": {"kv_ttl_s": 2}},
     r"^worker\.kv_ttl_s \(2\) must be more than worker\.heartbeat_s \(2\)"),
]


@pytest.mark.parametrize(("overrides", "message"), REFUSED_AT_LOAD)
def test_values_a_service_would_refuse_later_are_refused_at_load(overrides: dict,
                                                                  message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_mesh_config(None, environ={}, overrides=overrides)


@pytest.mark.parametrize(("overrides", "where", "value"), [
    ({"gateway": {"api_keys": {"abcdefghij": "acme-1_x.y"}}}, "gateway.api_keys",
     {"abcdefghij": "acme-1_x.y"}),
    ({"planner": {"tenant_weights": {"acme": "2.5", "default": "1e-3"}}},
     "planner.tenant_weights", {"acme": "2.5", "default": "1e-3"}),
    ({"sim_engine": {"schedule_policy": "lpm", "profile": "h200-llama3.1-8b"}},
     "sim_engine.schedule_policy", "lpm"),
    ({"planner": {"policy": "srpt+affinity"}}, "planner.policy", "srpt+affinity"),
    ({"worker": {"heartbeat_s": 9.5}}, "worker.heartbeat_s", 9.5),  # one beat within the TTL
])
def test_values_at_their_bounds_are_taken(overrides: dict, where: str, value: object) -> None:
    got: object = load_mesh_config(None, environ={}, overrides=overrides)
    for part in where.split("."):
        got = getattr(got, part)
    assert (dict(got) if isinstance(got, Mapping) else got) == value


@pytest.mark.parametrize("weight", ["2", "0.5", "1e-9", "0", "-3", "-0", "nan", "inf", "-inf"])
def test_a_configured_weight_is_held_to_a_tenant_records_rule(weight: str) -> None:
    """One rule for planner.tenant_weights and `ostinato tenants --weight` (TenantLimits)."""
    from cache.tenancy import TenantLimits

    try:
        TenantLimits(weight=float(weight))
    except ValueError:
        with pytest.raises(ConfigError, match=r"^planner\.tenant_weights"):
            load_mesh_config(None, environ={}, overrides={"planner": {"tenant_weights": {
                "acme": weight}}})
    else:
        cfg = load_mesh_config(None, environ={}, overrides={"planner": {"tenant_weights": {
            "acme": weight}}})
        assert cfg.planner.weights() == {"acme": float(weight)}


@pytest.mark.parametrize(("text", "message"), [
    ("name: x\n", r"profile is missing field 'model'"),
    ("[1, 2]\n", r"expected a mapping, got \[1, 2\]"),
    ("model: {params: [\n", r"is not valid YAML"),
    ("name: x\nmodel: 5\nhardware: {}\nefficiency: {}\n", r"profile is malformed"),
])
def test_a_profile_file_that_is_not_a_profile_is_refused_at_load(tmp_path: Path, text: str,
                                                                 message: str) -> None:
    profile = tmp_path / "p.yaml"
    profile.write_text(text)
    with pytest.raises(ConfigError, match=rf"^sim_engine\.profile: .*{message}"):
        load_mesh_config(None, environ={}, overrides={"sim_engine": {"profile": str(profile)}})


def test_a_profile_file_is_taken(tmp_path: Path) -> None:
    from importlib import resources

    profile = tmp_path / "mine.yaml"
    profile.write_text((resources.files("workers.sim") / "profiles" / "h100-llama3.1-8b.yaml")
                       .read_text())
    cfg = load_mesh_config(None, environ={}, overrides={"sim_engine": {"profile": str(profile)}})
    assert cfg.sim_engine.profile == str(profile)
