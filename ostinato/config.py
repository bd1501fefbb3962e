"""Mesh configuration: one frozen dataclass per service (ostinato/service_config.py),
composed into MeshConfig.

Sources, later ones winning: defaults, a YAML file (sections named as the fields of
MeshConfig), environment variables OSTINATO_<SECTION>__<FIELD> (e.g.
OSTINATO_PLANNER__POLICY=fcfs+round_robin), then command-line flags.
Validation happens here, at the edge, with errors that name the field.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ostinato.config_checks import (
    TOOL_FORMATS,
    ConfigError,
    check_port,
    check_tokenizer_spec,
    check_tool_format,
)
from ostinato.config_file import config_text
from ostinato.event_loop import EVENT_LOOPS
from ostinato.gateway_config import GatewayConfig
from ostinato.service_config import (
    TRACE_EXPORTERS,
    PlannerConfig,
    RedisConfig,
    SimEngineConfig,
    TelemetryConfig,
    WorkerConfig,
)

# The services' sections are re-exported: `ostinato.config` is the configuration's one import path.
__all__ = [
    "TOOL_FORMATS",
    "TRACE_EXPORTERS",
    "ConfigError",
    "GatewayConfig",
    "MeshConfig",
    "PlannerConfig",
    "RedisConfig",
    "SimEngineConfig",
    "TelemetryConfig",
    "WorkerConfig",
    "as_dict",
    "build",
    "check_sglang_mesh",
    "check_sim_mesh",
    "check_tokenizer_spec",
    "check_tool_format",
    "load_mesh_config",
    "name_variables",
]


@dataclass(frozen=True)
class MeshConfig:
    """The whole mesh on one machine (`ostinato up`, tests); services run alone read their own
    section of it."""

    workers: int = 2  # sim engines and workers `ostinato up` starts (one engine each)
    planner_replicas: int = 1  # planners `ostinato up` starts; more than one turns planner.ha on
    redis: RedisConfig = field(default_factory=RedisConfig)
    gateway: GatewayConfig = field(default_factory=GatewayConfig)
    planner: PlannerConfig = field(default_factory=PlannerConfig)
    worker: WorkerConfig = field(default_factory=WorkerConfig)
    sim_engine: SimEngineConfig = field(default_factory=SimEngineConfig)
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    # Event loop of every service process: uvloop (asyncio's where it is not installed) or asyncio
    event_loop: str = "uvloop"

    def __post_init__(self) -> None:
        if self.event_loop not in EVENT_LOOPS:
            raise ConfigError(f"event_loop: one of {', '.join(EVENT_LOOPS)}, got {self.event_loop!r}")
        if self.workers < 1:
            raise ConfigError("workers: must be at least 1")
        if self.planner_replicas < 1:
            raise ConfigError("planner_replicas: must be at least 1")
        if self.gateway.kv_tokenizer != self.worker.kv_tokenizer:
            raise ConfigError("gateway.kv_tokenizer and worker.kv_tokenizer: must name the same "
                              "tokenizer (the engines')")
        if self.worker.heartbeat_s >= self.planner.worker_ttl_s:
            raise ConfigError(f"worker.heartbeat_s ({self.worker.heartbeat_s:g}) must be less "
                              f"than planner.worker_ttl_s ({self.planner.worker_ttl_s:g}): the "
                              "planner drops a worker it has not heard from for worker_ttl_s")
        if self.gateway.call_timeout_s > self.worker.engine_timeout_s:
            raise ConfigError(  # (workers review 2026-12-05 F5)
                f"gateway.call_timeout_s ({self.gateway.call_timeout_s:g}) must be at most "
                f"worker.engine_timeout_s ({self.worker.engine_timeout_s:g}): a worker cuts "
                "each engine request at engine_timeout_s, inside the call's own deadline; "
                "raise both")


def _coerce(value: Any, tp: Any, name: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        raise ConfigError(f"{name}: expected true or false, got {value!r}")
    if tp is int:
        try:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            number = int(value)
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(f"{name}: expected an integer, got {value!r}") from None
        if name == "port" or name.endswith((".port", "_port")):
            check_port(name, number)
        return number
    if tp is float:
        try:
            number_f = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}: expected a number, got {value!r}") from None
        if not math.isfinite(number_f):
            raise ConfigError(f"{name}: expected a finite number, got {value!r}")
        return number_f
    if tp is str:
        if not isinstance(value, str | int | float):
            raise ConfigError(f"{name}: expected a string, got {value!r}")
        return str(value)
    if origin in (Mapping, dict) or tp is dict:
        if isinstance(value, str):  # env form: "key1=tenant1,key2=tenant2"
            pairs = [p for p in value.split(",") if p]
            try:
                value = dict(p.split("=", 1) for p in pairs)
            except ValueError:
                raise ConfigError(f"{name}: expected k=v pairs separated by commas") from None
        if not isinstance(value, Mapping):
            raise ConfigError(f"{name}: expected a mapping, got {value!r}")
        return types.MappingProxyType({str(k): str(v) for k, v in value.items()})
    raise ConfigError(f"{name}: unsupported type {tp}")


def _is_section(tp: object) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _typed(cls: type, data: Any, prefix: str = "") -> dict[str, Any]:
    """One source's values for dataclass `cls`, checked (a mapping of its fields, each value of
    its field's type) and converted; sections as nested dicts."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        where = f" in {prefix}" if prefix else ""
        raise ConfigError(f"unknown field{where}: {', '.join(unknown)}")
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else key
        tp = hints[key]
        out[key] = _typed(tp, value, name) if _is_section(tp) else _coerce(value, tp, name)
    return out


def _merged(cls: type, sources: list[dict[str, Any]]) -> dict[str, Any]:
    """Checked sources (_typed) merged field by field, later ones winning."""
    hints = typing.get_type_hints(cls)
    out: dict[str, Any] = {}
    for source in sources:
        for key, value in source.items():
            tp = hints[key]
            out[key] = _merged(tp, [out.get(key, {}), value]) if _is_section(tp) else value
    return out


def _instance(cls: type, kwargs: dict[str, Any], prefix: str) -> Any:
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{prefix or 'config'}: {exc}") from None


def _construct(cls: type, values: dict[str, Any], prefix: str = "") -> Any:
    """Dataclass `cls` from checked values (_typed), its own checks (__post_init__) run."""
    hints = typing.get_type_hints(cls)
    kwargs = {key: _construct(hints[key], value, f"{prefix}.{key}" if prefix else key)
              if _is_section(hints[key]) else value for key, value in values.items()}
    return _instance(cls, kwargs, prefix)


def build(cls: type, data: Mapping[str, Any], prefix: str = "") -> Any:
    """Builds dataclass `cls` from a mapping, rejecting unknown keys and bad values."""
    return _construct(cls, _typed(cls, data, prefix), prefix)


def _check_overridden(cls: type, sources: list[dict[str, Any]], final: Any, prefix: str = "",
                      named: Callable[[int, ConfigError], ConfigError] = lambda _, exc: exc,
                      ) -> None:
    """A value that a later source overrides is still refused where it is the cause of the
    error its source gives without the later ones: the same error with the final values
    around it (so values complete only together, as a TLS key from the environment, pass).
    `named`: the error as raised for the source at that index (naming its variables)."""
    hints = typing.get_type_hints(cls)
    sections = {key for key, tp in hints.items() if _is_section(tp)}
    current = {f.name: getattr(final, f.name) for f in dataclasses.fields(cls)}
    for i, source in enumerate(sources):
        overridden = sorted({key for later in sources[i + 1 :] for key in later} & source.keys() - sections)
        if not overridden:
            continue
        try:
            _construct(cls, _merged(cls, sources[: i + 1]), prefix)
        except ConfigError as exc:
            without_later = exc
        else:
            continue
        for key in overridden:
            try:
                _instance(cls, {**current, key: source[key]}, prefix)
            except ConfigError as exc:
                if str(exc) == str(without_later):
                    raise named(i, without_later) from None
    for key in sorted(sections):
        _check_overridden(hints[key], [source.get(key, {}) for source in sources],
                          current[key], f"{prefix}.{key}" if prefix else key, named)


# OSTINATO_* variables that are not config fields (a trailing *: every name it begins); every
# other one sets a field (an unknown one is refused). docs/reference/config.md lists them.
NOT_CONFIG_VARIABLES: dict[str, str] = {
    "OSTINATO_LOG_LEVEL": "the services' log level: debug, info (the default), warning or error "
                          "(tracing/logs.py)",
    "OSTINATO_LOG_JSON": "1: log JSON lines even to a terminal (`ostinato up` sets it for its "
                         "services, whose logs go to files); otherwise JSON only where stderr "
                         "is not a terminal",
    "OSTINATO_REDIS8_SERVER": "a Redis 8 redis-server (vector sets): the embedded Redis runs it "
                              "where `redis.server` is empty, before the one `make redis8` "
                              "built (cache/redis_server.py find_vector_redis)",
    "OSTINATO_API_KEY": "the key the examples send without `--api-key`; no service reads it",
    "OSTINATO_TEST_*": "the test suite's switches (tests/)",
}


def _not_config(key: str) -> bool:
    return any(key.startswith(name[:-1]) if name.endswith("*") else key == name
               for name in NOT_CONFIG_VARIABLES)


def _env_fields(environ: Mapping[str, str]) -> dict[str, list[str]]:
    """The mesh config's OSTINATO_* variables, each with the path of the field it sets."""
    return {key: key[len("OSTINATO_") :].lower().split("__") for key in environ
            if key.startswith("OSTINATO_") and not _not_config(key)}


def _nested(path: list[str], value: Any) -> dict[str, Any]:
    """{"a": {"b": value}} of path ["a", "b"]."""
    out: dict[str, Any] = {path[-1]: value}
    for part in reversed(path[:-1]):
        out = {part: out}
    return out


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, parts in _env_fields(environ).items():
        value = environ[key]
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{key}: another OSTINATO_ variable sets {part} as a whole")
        if isinstance(node.get(parts[-1]), dict):
            raise ConfigError(f"{key}: other OSTINATO_ variables set fields of {parts[-1]}")
        node[parts[-1]] = value
    return out


def _typed_env(environ: Mapping[str, str]) -> dict[str, Any]:
    """The OSTINATO_* variables' checked values (_typed), each variable checked alone first
    so that an error names it."""
    values = _env_overrides(environ)  # variables that clash are refused first
    for key, path in _env_fields(environ).items():
        try:
            _typed(MeshConfig, _nested(path, environ[key]))
        except ConfigError as exc:
            raise ConfigError(f"{exc} (from {key})") from None
    return _typed(MeshConfig, values)


def _mentions(message: str, path: list[str]) -> bool:
    """Whether an error names the field at `path`: whole ("planner.port"), or bare beside its
    section ("planner.starvation_ratio and starvation_min_s: ...", "sim_engine: schedule_policy
    ...")."""
    def named(name: str) -> bool:
        return re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", message) is not None

    section, name = ".".join(path[:-1]), path[-1]
    return named(f"{section}.{name}" if section else name) or bool(
        section and named(section) and named(name))


def _from_variables(exc: ConfigError, variables: Mapping[str, list[str]]) -> ConfigError:
    """The error, naming those of the OSTINATO_* variables (-> field path) that set a field
    it names."""
    named = [key for key, path in variables.items() if _mentions(str(exc), path)]
    return ConfigError(f"{exc} (from {', '.join(named)})") if named else exc


def _leaf_paths(values: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """The field paths that overrides set; sections as dicts."""
    return {path for key, value in values.items()
            for path in (_leaf_paths(value, (*prefix, key)) if isinstance(value, dict)
                         else {(*prefix, key)})}


def name_variables(exc: ConfigError, environ: Mapping[str, str] | None = None,
                   overrides: Mapping[str, Any] | None = None) -> ConfigError:
    """An error about the final values of a config (load_mesh_config's), naming the OSTINATO_*
    variables that gave a field it names: those whose field no override (flag) sets."""
    flagged = _leaf_paths(overrides or {})
    return _from_variables(exc, {key: path for key, path in _env_fields(
        os.environ if environ is None else environ).items() if tuple(path) not in flagged})


def load_mesh_config(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> MeshConfig:
    """Reads defaults (the dataclasses', then a command's own `defaults`), then the YAML
    file, then OSTINATO_* env, then explicit overrides.

    Each source is checked on its own before they are merged, so a bad value is refused, with
    its field's name, whether or not a later source sets the same field or section. An error
    in a value from the environment names its variable too."""
    data: dict[str, Any] = {}
    if path:
        p = Path(path)
        try:
            loaded = yaml.safe_load(config_text(p)) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML: {exc}") from None
        if not isinstance(loaded, Mapping):
            raise ConfigError(f"{p}: top level must be a mapping")
        data = dict(loaded)
    environ = os.environ if environ is None else environ
    defaults_values, file_values = _typed(MeshConfig, defaults or {}), _typed(MeshConfig, data)
    env, flags = _typed_env(environ), _typed(MeshConfig, overrides or {})
    sources = [defaults_values, file_values, env, flags]
    variables = _env_fields(environ)
    try:
        cfg: MeshConfig = _construct(MeshConfig, _merged(MeshConfig, sources))
    except ConfigError as exc:
        raise name_variables(exc, environ, flags) from None
    _check_overridden(MeshConfig, sources, cfg, named=lambda i, exc: (
        _from_variables(exc, variables) if sources[i] is env else exc))
    return cfg


def as_dict(cfg: Any) -> dict[str, Any]:
    """A plain, YAML-serializable dict of a config dataclass (load_mesh_config's inverse)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            out[f.name] = as_dict(value)
        elif isinstance(value, Mapping):
            out[f.name] = dict(value)
        else:
            out[f.name] = value
    return out


def check_sim_mesh(cfg: MeshConfig) -> None:
    """A mesh of sim engines: the gateway must read what the simulated model writes."""
    if cfg.gateway.tool_call_parser != cfg.sim_engine.tool_call_format:
        raise ConfigError("gateway.tool_call_parser and sim_engine.tool_call_format: must name "
                          "the same format (the mesh's engines are simulated)")
    if cfg.gateway.reasoning_parser != cfg.sim_engine.reasoning_format:
        raise ConfigError("gateway.reasoning_parser and sim_engine.reasoning_format: must name "
                          "the same format (the mesh's engines are simulated)")
    if cfg.gateway.model != cfg.sim_engine.model:
        raise ConfigError("gateway.model and sim_engine.model: must name the same model")


def check_sglang_mesh(cfg: MeshConfig) -> None:
    """A mesh whose workers launch SGLang: the engines hold a constrained call's grammar until
    the thinking ends only when launched with the gateway's reasoning parser
    (worker.engine_reasoning_parser: SGLang's --reasoning-parser)."""
    if cfg.gateway.reasoning_parser != cfg.worker.engine_reasoning_parser:
        raise ConfigError("gateway.reasoning_parser and worker.engine_reasoning_parser: must "
                          "name the same format (the launched SGLang servers' "
                          "--reasoning-parser; ostinato up --reasoning-parser sets both)")
