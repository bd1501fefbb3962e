"""Deterministic JSON instances of a JSON Schema, for the sim engine's constrained decoding.

When a request carries ``sampling_params.json_schema`` (SGLang's constrained decoding), the
simulated model must emit JSON that the schema accepts; the same schema is also used to fill
a simulated tool call's arguments from the tool's ``parameters``. :func:`instance` builds such
a value from a draft 2020-12 subset, the same for the same seed:

- ``type`` (a single type or a list: the first non-null one that can be satisfied), ``enum``,
  ``const``, ``default`` and ``examples`` (preferred when they validate);
- objects: ``properties``, ``required``, ``additionalProperties``, ``minProperties`` and
  ``maxProperties``; every listed property is emitted (only the required ones when deep);
- arrays: ``items``, ``prefixItems``, ``minItems``, ``maxItems``, ``uniqueItems``;
- strings: ``minLength``, ``maxLength``, ``pattern`` and ``format`` (date, date-time, time, email, uri,
  uuid, hostname, ipv4, ipv6); text is made of lowercase words;
- numbers and integers: ``minimum``, ``maximum``, ``exclusiveMinimum``, ``exclusiveMaximum``,
  ``multipleOf``;
- ``anyOf`` / ``oneOf`` (the first non-null branch that works, an ``anyOf``'s first drawn from
  the seed; for ``oneOf`` the value must match exactly one branch), ``allOf`` (merged),
  ``$ref`` to JSON pointers in the same document (``#/$defs/...``, ``#/definitions/...``),
  recursion bounded by depth.

``pattern``: a string it matches (workers/sim/regex_instance.py; one with lookarounds
only where ``const``, ``enum``, ``default`` or ``examples`` settle the value); ``not``,
``if``/``then``/``else``, ``contains``, ``propertyNames``,
``patternProperties`` and ``dependent*`` are only checked: the value is built without them
and :class:`UnsupportedSchema` is raised if it happens not to satisfy them. Annotations
(``title``, ``description``, ...) and unknown keywords are ignored; ``unevaluatedProperties`` /
``unevaluatedItems`` are not aimed for either. Every instance is checked against the whole schema
(jsonschema's draft 2020-12 validator, formats not checked) before it is returned.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from workers.sim.json_schema import (
    _NUMBER_KEYS,
    Schema,
    UnsupportedSchema,
    _Checker,
    _conj,
    _exact,
    _is_null_branch,
    _is_number,
    _json_eq,
    _pointer_token,
    _types_of,
)
from workers.sim.json_values import FORMATS, Rng, default_range, outward, spare_keys
from workers.sim.regex_instance import UnsupportedPattern, pattern_instance

__all__ = ["UnsupportedSchema", "instance"]


_DEEP = 4  # beyond this nesting depth: empty arrays, required properties only, null if allowed
_MAX_DEPTH = 32  # recursion that cannot bottom out by then is reported as unsupported
_BUDGET = 200_000  # schema nodes visited per instance: bounds backtracking through anyOf / oneOf
PATTERN_DRAWS = 8  # strings drawn for a pattern before its lengths count as unmet
_NUMERIC_SPAN = 100  # width of the range drawn from when a number has at most one bound

# Keywords the generator does not aim for: it builds the value without them and then checks.
_CHECKED_ONLY = (
    "not",
    "if",
    "contains",
    "propertyNames",
    "patternProperties",
    "dependentRequired",
    "dependentSchemas",
)

_TYPE_HINTS = (
    ("object", ("properties", "required", "additionalProperties", "minProperties", "maxProperties")),
    ("array", ("items", "prefixItems", "minItems", "maxItems", "uniqueItems")),
    ("string", ("minLength", "maxLength", "format", "pattern")),
    ("number", ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")),
)



def instance(schema: Mapping[str, Any] | bool, seed: int) -> Any:
    """A JSON value valid against `schema` (draft 2020-12 subset), the same for the same seed.

    Raises UnsupportedSchema, naming the path of the offending part of the schema, when the
    schema uses a feature that is not supported (e.g. ``pattern``) or admits no value.
    """
    gen = _Generator(schema, seed)
    value = gen.generate(schema, "", 0)
    if not _Checker(schema).valid(value, schema):
        raise UnsupportedSchema("", "could not build an instance that satisfies every keyword")
    return value




class _Generator:
    def __init__(self, root: Schema, seed: int) -> None:
        self.rng = Rng(seed)
        self.checker = _Checker(root)
        self.budget = _BUDGET

    def generate(self, schema: Any, path: str, depth: int) -> Any:
        self.budget -= 1
        if self.budget < 0:
            raise UnsupportedSchema(path, "the schema is too large or too recursive to satisfy")
        if depth > _MAX_DEPTH:
            raise UnsupportedSchema(path, "recursion does not terminate (required all the way down)")
        if schema is True:
            return self.rng.word()
        if schema is False:
            raise UnsupportedSchema(path, "the false schema admits no value")
        if not isinstance(schema, Mapping):
            raise UnsupportedSchema(path, f"{type(schema).__name__} is not a schema")
        node = self.checker.flatten(schema, path)
        value = self._settled(node, path)
        if value is _NOTHING:
            value = self._build(node, path, depth)
        for key in _CHECKED_ONLY:
            if key in node and not self.checker.valid(value, node):
                raise UnsupportedSchema(path, f"{key!r} is not supported")
        return value

    def _settled(self, node: Mapping[str, Any], path: str) -> Any:
        """`const`, a valid `default` or example, or a choice from `enum`; else _NOTHING."""
        if "const" in node:
            return copy.deepcopy(node["const"])
        candidates = [node["default"]] if "default" in node else []
        examples = node.get("examples")
        if isinstance(examples, list):
            candidates.extend(examples)
        for candidate in candidates:
            if self.checker.valid(candidate, node):
                return copy.deepcopy(candidate)
        if "enum" in node:
            rest = {k: v for k, v in node.items() if k != "enum"}
            options = [v for v in node["enum"] if self.checker.valid(v, rest)]
            if not options:
                raise UnsupportedSchema(path, "no 'enum' value satisfies the other keywords")
            return copy.deepcopy(self.rng.choice(options))
        return _NOTHING

    def _build(self, node: dict[str, Any], path: str, depth: int) -> Any:
        for key in ("anyOf", "oneOf"):
            if key in node:
                return self._branch(node, key, path, depth)
        types = _types_of(node)
        if types is None:
            types = [t for t, hints in _TYPE_HINTS if any(h in node for h in hints)]
            if not types:
                return self.rng.word()
        non_null = [t for t in types if t != "null"]
        if "null" in types and (depth > _DEEP or not non_null):
            return None
        errors: list[UnsupportedSchema] = []
        for t in non_null:
            try:
                return self._typed(t, node, path, depth)
            except UnsupportedSchema as e:
                errors.append(e)
        if "null" in types:
            return None
        if errors:
            raise errors[0]
        raise UnsupportedSchema(path, f"'type' {node.get('type')!r} is not supported")

    def _branch(self, node: dict[str, Any], key: str, path: str, depth: int) -> Any:
        branches = node[key]
        rest = {k: v for k, v in node.items() if k != key}
        order = sorted(range(len(branches)), key=lambda i: _is_null_branch(branches[i]) != (depth > _DEEP))
        live = [i for i in order if not _is_null_branch(branches[i])]
        if key == "anyOf" and len(live) > 1 and depth <= _DEEP:
            # the first tried drawn from the seed: a forced call's tool (one branch a tool) is
            # the prompt's, as a free call's is, not always the first listed (LangChain's
            # ToolStrategy never reached its answer tool: framework review F4)
            first = live[self.rng.below(len(live))]
            order = [first, *(i for i in order if i != first)]
        errors: list[UnsupportedSchema] = []
        attempts = [(i, n) for i in order for n in range(3 if key == "oneOf" else 1)]
        for i, n in attempts:
            if branches[i] is False:
                continue
            sub_path = f"{path}/{key}/{i}"
            try:
                value = self.generate(_conj(rest, branches[i]), sub_path, depth)
            except UnsupportedSchema as e:
                errors.append(e)
                continue
            if key == "oneOf" and sum(self.checker.valid(value, b) for b in branches) != 1:
                # another draw from the same branch may fall outside the others (28.5, not 28.0)
                if n == 0:
                    errors.append(UnsupportedSchema(sub_path, "the value matches several 'oneOf' branches"))
                continue
            return value
        if errors:
            raise errors[0]
        raise UnsupportedSchema(path, f"'{key}' has no branch that admits a value")

    def _typed(self, t: str, node: dict[str, Any], path: str, depth: int) -> Any:
        match t:
            case "null":
                return None
            case "boolean":
                return self.rng.below(2) == 1
            case "integer":
                return self._integer(node, path)
            case "number":
                return self._number(node, path)
            case "string":
                return self._string(node, path)
            case "array":
                return self._array(node, path, depth)
            case "object":
                return self._object(node, path, depth)
        raise UnsupportedSchema(path, f"'type' {t!r} is not a JSON type")

    # ------------------------------------------------------------------ numbers

    def _integer(self, node: Mapping[str, Any], path: str) -> int:
        lo: int | None = None
        hi: int | None = None
        if _is_number(node.get("minimum")):
            lo = math.ceil(node["minimum"])
        if _is_number(node.get("exclusiveMinimum")):
            bound = math.floor(node["exclusiveMinimum"]) + 1
            lo = bound if lo is None else max(lo, bound)
        if _is_number(node.get("maximum")):
            hi = math.floor(node["maximum"])
        if _is_number(node.get("exclusiveMaximum")):
            bound = math.ceil(node["exclusiveMaximum"]) - 1
            hi = bound if hi is None else min(hi, bound)
        m = node.get("multipleOf")
        step = _exact(m).numerator if _is_number(m) and m > 0 else 1
        lo, hi = default_range(lo, hi, _NUMERIC_SPAN * step)
        kmin, kmax = -((-lo) // step), hi // step
        if kmin > kmax:
            what = "the bounds and 'multipleOf'" if step > 1 else "the bounds"
            raise UnsupportedSchema(path, f"no integer satisfies {what}")
        start = self.rng.between(kmin, kmax)
        for k in outward(start, kmin, kmax):
            value = k * step
            if not _is_number(m) or self.checker.valid(value, {"multipleOf": m}):
                return value
        raise UnsupportedSchema(path, "'multipleOf' cannot be met exactly in floating point")

    def _number(self, node: Mapping[str, Any], path: str) -> float:
        bounds = {k: node[k] for k in _NUMBER_KEYS if _is_number(node.get(k))}

        def inside(v: float) -> bool:
            return math.isfinite(v) and self.checker.valid(v, bounds)

        lo = max((node[k] for k in ("minimum", "exclusiveMinimum") if _is_number(node.get(k))), default=None)
        hi = min((node[k] for k in ("maximum", "exclusiveMaximum") if _is_number(node.get(k))), default=None)
        a, b = default_range(lo, hi, _NUMERIC_SPAN)
        m = node.get("multipleOf")
        if _is_number(m) and m > 0:
            step = _exact(m)
            kmin, kmax = math.ceil(Fraction(a) / step), math.floor(Fraction(b) / step)
            if kmin > kmax:
                raise UnsupportedSchema(path, "no multiple of 'multipleOf' lies within the bounds")
            for k in outward(self.rng.between(kmin, kmax), kmin, kmax):
                exact = k * step
                value: float = int(exact) if exact.denominator == 1 and isinstance(m, int) else float(exact)
                if inside(value):
                    return value
            raise UnsupportedSchema(path, "'multipleOf' cannot be met exactly within the bounds")
        drawn = a + (b - a) * self.rng.unit()
        for value in (round(drawn, 2), round(drawn, 6), drawn, (a + b) / 2, a, b):
            if inside(value):
                return value
        raise UnsupportedSchema(path, "no number satisfies the bounds")

    # ------------------------------------------------------------------ strings

    def _string(self, node: Mapping[str, Any], path: str) -> str:
        lo = int(node.get("minLength", 0))
        hi = node.get("maxLength")
        if hi is not None and hi < lo:
            raise UnsupportedSchema(path, "'maxLength' is below 'minLength'")
        if "pattern" in node:
            return self._patterned(node["pattern"], lo, hi, path)
        fmt = node.get("format")
        if isinstance(fmt, str) and fmt in FORMATS:
            value = FORMATS[fmt](self.rng)
            if len(value) < lo or (hi is not None and len(value) > hi):
                raise UnsupportedSchema(path, f"'format' {fmt!r} does not fit 'minLength'/'maxLength'")
            return value
        text = " ".join(self.rng.word() for _ in range(self.rng.between(1, 3)))
        while len(text) < lo:
            text += " " + self.rng.word()
        if hi is not None and len(text) > hi:
            text = text[:hi]
            if text.endswith(" "):
                text = text[:-1] + "s"
        return text

    def _patterned(self, pattern: Any, lo: int, hi: int | None, path: str) -> str:
        """A string `pattern` finds (JSON Schema's patterns are unanchored: what it matches,
        padded to `minLength` where that keeps a match), within the lengths; a few draws."""
        if not isinstance(pattern, str):
            raise UnsupportedSchema(path, "'pattern' must be a string")
        for _ in range(PATTERN_DRAWS):
            try:
                core = pattern_instance(pattern, self.rng)
            except UnsupportedPattern as exc:
                raise UnsupportedSchema(path, str(exc)) from exc
            for text in (core, core + "x" * (lo - len(core)), "x" * (lo - len(core)) + core):
                if lo <= len(text) <= (len(text) if hi is None else hi) and re.search(
                        pattern, text):
                    return text
        raise UnsupportedSchema(path, "no string of the lengths allowed was found for 'pattern'")

    # ------------------------------------------------------------------ arrays

    def _array(self, node: Mapping[str, Any], path: str, depth: int) -> list[Any]:
        prefix = node.get("prefixItems", [])
        items = node.get("items", True)
        if isinstance(items, list):
            raise UnsupportedSchema(f"{path}/items", "array-form 'items' is not draft 2020-12")
        lo = int(node.get("minItems", 0))
        hi = node.get("maxItems")
        natural = len(prefix) if prefix else self.rng.between(1, 2)
        n = lo if depth > _DEEP else max(lo, natural)
        if hi is not None:
            n = min(n, int(hi))
        if items is False:
            n = min(n, len(prefix))
        if n < lo:
            raise UnsupportedSchema(path, "'minItems' cannot be met: 'items' is false")
        unique = bool(node.get("uniqueItems"))
        out: list[Any] = []
        for i in range(n):
            if i < len(prefix):
                sub, sub_path = prefix[i], f"{path}/prefixItems/{i}"
            else:
                sub, sub_path = items, f"{path}/items"
            for _attempt in range(8 if unique else 1):
                value = self.generate(sub, sub_path, depth + 1)
                if not unique or not any(_json_eq(value, seen) for seen in out):
                    out.append(value)
                    break
            else:
                if i < lo:
                    raise UnsupportedSchema(path, "'uniqueItems' with 'minItems': not enough distinct items")
                break
        return out

    # ------------------------------------------------------------------ objects

    def _object(self, node: Mapping[str, Any], path: str, depth: int) -> dict[str, Any]:
        props: Mapping[str, Any] = node.get("properties", {})
        required = list(dict.fromkeys(node.get("required", [])))
        extra = node.get("additionalProperties", True)
        optional = [k for k in props if k not in required] if depth <= _DEEP else []
        hi = node.get("maxProperties")
        if hi is not None:
            if len(required) > hi:
                raise UnsupportedSchema(path, "'required' lists more properties than 'maxProperties'")
            optional = optional[: int(hi) - len(required)]
        keep = set(required) | set(optional)
        keys = [k for k in props if k in keep] + [k for k in required if k not in props]
        out: dict[str, Any] = {}
        for key in keys:
            if key in props:
                out[key] = self.generate(props[key], f"{path}/properties/{_pointer_token(key)}", depth + 1)
            elif extra is False:
                raise UnsupportedSchema(path, f"required {key!r} is forbidden by 'additionalProperties'")
            else:
                out[key] = self.generate(extra, f"{path}/additionalProperties", depth + 1)
        lo = int(node.get("minProperties", 0))
        if len(out) < lo and extra is False:
            raise UnsupportedSchema(path, "'minProperties' cannot be met with 'additionalProperties': false")
        spare = (key for key in spare_keys() if key not in out)
        while len(out) < lo:
            out[next(spare)] = self.generate(extra, f"{path}/additionalProperties", depth + 1)
        return out


_NOTHING: Any = object()
