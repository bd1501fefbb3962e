"""Workload specs, version 1 (../shared/workload-spec.md): loading, validation, overrides.

Unknown keys and impossible values raise SpecError naming the field, e.g.
`classes[0].calls.sigma: must be >= 0`. `sources` and `description` keys are free text
(where a figure comes from) and allowed at the top level and in each class.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from bench.dists import Dist, SpecError, _number, parse_dist

BUILTIN_DIR = Path(__file__).parent / "workloads"
SHAPES = ("chain", "fanout", "tree", "dag")
PROCESSES = ("poisson", "uniform", "burst")
_DOC_KEYS = {"sources", "description"}
DEFAULT_MAX_TOKENS = 4096  # a class's max_tokens when its output distribution has no maximum


@dataclass(frozen=True)
class SharedPrefix:
    id: str
    tokens: int
    scope: str  # tenant | global


@dataclass(frozen=True)
class ProgramClass:
    name: str
    weight: float
    shape: str
    calls: Dist
    fanout: int
    depth: int
    stages: tuple[int, ...]
    shared_prefix: SharedPrefix | None
    first_prompt_tokens: Dist
    step_prompt_tokens: Dist
    output_tokens: Dist
    context: str  # accumulate | fresh
    think_time_s: Dist
    deadline_s: Dist | None
    max_tokens: int = DEFAULT_MAX_TOKENS  # what its clients send as max_tokens
    labelled: bool = True  # whether its programs carry program_class (as a client would send)
    # Whether its clients end their programs (the SDK, a DAG client: EndProgram after the
    # last call). An OpenAI-compatible client does not: its programs are the gateway's
    # conversations, which the planner takes as done once idle (planner/core/programs.py).
    ends_programs: bool = True


@dataclass(frozen=True)
class Tenant:
    name: str
    weight: float
    share: float


@dataclass(frozen=True)
class Arrival:
    process: str
    rate: float
    burst_size: int


@dataclass(frozen=True)
class WorkloadSpec:
    name: str
    seed: int
    programs: int
    arrival: Arrival
    tenants: tuple[Tenant, ...]
    classes: tuple[ProgramClass, ...]

    def with_overrides(self, *, seed: int | None = None, programs: int | None = None,
                       rate: float | None = None,
                       ends_programs: bool | None = None) -> WorkloadSpec:
        """`ends_programs`: every class's clients end their programs (True) or none do
        (False: as OpenAI-compatible clients); None: as each class says."""
        spec = self
        if ends_programs is not None:
            spec = replace(spec, classes=tuple(replace(c, ends_programs=ends_programs)
                                               for c in spec.classes))
        if seed is not None:
            spec = replace(spec, seed=seed)
        if programs is not None:
            if programs < 1:
                raise SpecError(f"programs: must be >= 1, got {programs}")
            spec = replace(spec, programs=programs)
        if rate is not None:
            if rate <= 0:
                raise SpecError(f"arrival.rate: must be > 0, got {rate}")
            spec = replace(spec, arrival=replace(spec.arrival, rate=rate))
        return spec


def builtin_workloads() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def load_spec(name_or_path: str) -> WorkloadSpec:
    """A built-in workload by name, or a YAML/JSON file."""
    path = Path(name_or_path)
    if not path.exists():
        builtin = BUILTIN_DIR / f"{name_or_path}.yaml"
        if not builtin.exists():
            raise SpecError(f"workload: no file {name_or_path!r} and no built-in of that name "
                            f"(built-ins: {', '.join(builtin_workloads())})")
        path = builtin
    text = path.read_text()
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise SpecError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}") from None
    return parse_spec(data)


def _keys(data: object, field: str, allowed: set[str],
          required: set[str] | frozenset[str] = frozenset()) -> Mapping:
    if not isinstance(data, Mapping):
        raise SpecError(f"{field or 'spec'}: expected a mapping, got {type(data).__name__}")
    unknown = set(data) - allowed - _DOC_KEYS
    if unknown:
        raise SpecError(f"{field + '.' if field else ''}{sorted(unknown)[0]}: unknown key")
    missing = required - set(data)
    if missing:
        raise SpecError(f"{field + '.' if field else ''}{sorted(missing)[0]}: required")
    return data


def _int(value: object, field: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{field}: expected an integer, got {value!r}")
    if value < low:
        raise SpecError(f"{field}: must be >= {low}, got {value}")
    return value


def _positive(value: object, field: str, *, zero_ok: bool = False) -> float:
    x = _number(value, field)
    if x < 0 or (x == 0 and not zero_ok):
        raise SpecError(f"{field}: must be {'>= 0' if zero_ok else '> 0'}, got {x}")
    return x


def _choice(value: object, field: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise SpecError(f"{field}: expected one of {list(choices)}, got {value!r}")
    return str(value)


def _class(data: object, field: str) -> ProgramClass:
    d = _keys(data, field, {"name", "weight", "shape", "calls", "fanout", "depth", "stages",
                            "shared_prefix", "first_prompt_tokens", "step_prompt_tokens",
                            "output_tokens", "context", "think_time_s", "deadline_s",
                            "max_tokens", "labelled", "ends_programs"},
              {"name", "first_prompt_tokens", "output_tokens"})
    shape = _choice(d.get("shape", "chain"), f"{field}.shape", SHAPES)
    stages = d.get("stages", [4, 1])
    if not isinstance(stages, list) or not stages:
        raise SpecError(f"{field}.stages: expected a non-empty list of widths")
    shared = None
    if d.get("shared_prefix") is not None:
        sp = _keys(d["shared_prefix"], f"{field}.shared_prefix", {"id", "tokens", "scope"},
                   {"id", "tokens"})
        shared = SharedPrefix(str(sp["id"]), _int(sp["tokens"], f"{field}.shared_prefix.tokens", 1),
                              _choice(sp.get("scope", "tenant"), f"{field}.shared_prefix.scope",
                                      ("tenant", "global")))
    deadline = d.get("deadline_s")
    calls = parse_dist(d.get("calls", 1), f"{field}.calls")
    if calls.kind == "const" and calls.mean < 1:
        raise SpecError(f"{field}.calls: must be >= 1")
    output = parse_dist(d["output_tokens"], f"{field}.output_tokens")
    labelled, ends = d.get("labelled", True), d.get("ends_programs", True)
    if not isinstance(labelled, bool):
        raise SpecError(f"{field}.labelled: expected true or false, got {labelled!r}")
    if not isinstance(ends, bool):
        raise SpecError(f"{field}.ends_programs: expected true or false, got {ends!r}")
    return ProgramClass(
        name=str(d["name"]), weight=_positive(d.get("weight", 1.0), f"{field}.weight"),
        shape=shape, calls=calls,
        fanout=_int(d.get("fanout", 4), f"{field}.fanout", 1),
        depth=_int(d.get("depth", 2), f"{field}.depth", 0),
        stages=tuple(_int(w, f"{field}.stages[{i}]", 1) for i, w in enumerate(stages)),
        shared_prefix=shared,
        first_prompt_tokens=parse_dist(d["first_prompt_tokens"], f"{field}.first_prompt_tokens"),
        step_prompt_tokens=parse_dist(d.get("step_prompt_tokens", 0), f"{field}.step_prompt_tokens"),
        output_tokens=output,
        context=_choice(d.get("context", "accumulate"), f"{field}.context", ("accumulate", "fresh")),
        think_time_s=parse_dist(d.get("think_time_s", 0), f"{field}.think_time_s"),
        deadline_s=None if deadline is None else parse_dist(deadline, f"{field}.deadline_s"),
        max_tokens=_int(d.get("max_tokens", _output_max(output)), f"{field}.max_tokens", 1),
        labelled=labelled,
        ends_programs=ends,
    )


def _output_max(output: Dist) -> int:
    """A class's default max_tokens: its output distribution's maximum (a constant's value),
    else DEFAULT_MAX_TOKENS. Never a drawn length: clients do not know those."""
    if output.kind == "const":
        return max(1, round(output.mean))
    return max(1, round(output.max)) if output.max is not None else DEFAULT_MAX_TOKENS


def parse_spec(data: object) -> WorkloadSpec:
    d = _keys(data, "", {"version", "name", "seed", "programs", "arrival", "tenants", "classes"},
              {"version", "classes"})
    if d["version"] != 1:
        raise SpecError(f"version: only version 1 is supported, got {d['version']!r}")
    a = _keys(d.get("arrival", {}), "arrival", {"process", "rate", "burst_size"})
    arrival = Arrival(_choice(a.get("process", "poisson"), "arrival.process", PROCESSES),
                      _positive(a.get("rate", 1.0), "arrival.rate"),
                      _int(a.get("burst_size", 10), "arrival.burst_size", 1))
    raw_tenants = d.get("tenants") or [{"name": "default"}]
    if not isinstance(raw_tenants, list):
        raise SpecError("tenants: expected a list")
    tenants = []
    for i, t in enumerate(raw_tenants):
        t = _keys(t, f"tenants[{i}]", {"name", "weight", "share"}, {"name"})
        tenants.append(Tenant(str(t["name"]), _positive(t.get("weight", 1.0), f"tenants[{i}].weight"),
                              _positive(t.get("share", 1.0), f"tenants[{i}].share", zero_ok=True)))
    if len({t.name for t in tenants}) != len(tenants):
        raise SpecError("tenants: names must be unique")
    if sum(t.share for t in tenants) <= 0:
        raise SpecError("tenants: shares must not all be 0")
    if not isinstance(d["classes"], list) or not d["classes"]:
        raise SpecError("classes: expected a non-empty list")
    classes = tuple(_class(c, f"classes[{i}]") for i, c in enumerate(d["classes"]))
    if len({c.name for c in classes}) != len(classes):
        raise SpecError("classes: names must be unique")
    return WorkloadSpec(
        name=str(d.get("name", "workload")), seed=_int(d.get("seed", 0), "seed", 0),
        programs=_int(d.get("programs", 100), "programs", 1), arrival=arrival,
        tenants=tuple(tenants), classes=classes,
    )
