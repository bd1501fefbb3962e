"""JSON Schema plumbing for the sim engine's instance generator (workers/sim/json_instance.py):
merging `allOf` / `$ref` into one node, local `$ref` resolution, and validation with
jsonschema's draft 2020-12 validator. Pure; no randomness here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from fractions import Fraction
from typing import Any, TypeGuard
from urllib.parse import unquote

from jsonschema import Draft202012Validator

Schema = Mapping[str, Any] | bool
_MAX_CHAIN = 64  # $ref / allOf resolutions without descending into the instance


class UnsupportedSchema(ValueError):
    """The schema uses something the generator cannot satisfy; names where in the schema."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"schema at {path or '/'}: {reason}")
        self.path = path or "/"
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.reason))



# --------------------------------------------------------------------------- helpers


def _pointer_token(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


def _json_eq(a: Any, b: Any) -> bool:
    """JSON equality: booleans are not numbers, 1 == 1.0, containers compared deeply."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_eq(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_json_eq(a[k], b[k]) for k in a)
    if isinstance(a, (list, Mapping)) or isinstance(b, (list, Mapping)):
        return False
    return bool(a == b)


def _is_number(x: Any) -> TypeGuard[int | float]:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _exact(x: float) -> Fraction:
    """The decimal a number was written as: 0.1 -> 1/10."""
    return Fraction(repr(x)) if isinstance(x, float) else Fraction(x)


def _types_of(node: Mapping[str, Any]) -> list[str] | None:
    t = node.get("type")
    if t is None:
        return None
    return [t] if isinstance(t, str) else [str(x) for x in t]


def _is_null_branch(branch: Any) -> bool:
    if not isinstance(branch, Mapping):
        return False
    types = _types_of(branch)
    if types is not None and types == ["null"]:
        return True
    if "const" in branch and branch["const"] is None:
        return True
    enum = branch.get("enum")
    return isinstance(enum, list) and len(enum) > 0 and all(v is None for v in enum)


def _conj(a: Any, b: Any) -> Any:
    """The schema both `a` and `b` must hold."""
    if a is False or b is False:
        return False
    if a is True:
        return b
    if b is True:
        return a
    return {"allOf": [a, b]}


def _meet_types(a: Any, b: Any, path: str) -> Any:
    left = [a] if isinstance(a, str) else list(a)
    right = [b] if isinstance(b, str) else list(b)
    out: list[str] = []
    for t in left:
        if t in right:
            met = t
        elif t in ("integer", "number") and {"integer", "number"} & set(right):
            met = "integer"
        else:
            continue
        if met not in out:
            out.append(met)
    if not out:
        raise UnsupportedSchema(path, f"'allOf' requires incompatible types {left} and {right}")
    return out[0] if len(out) == 1 else out


def _lcm_multiple(a: float, b: float) -> float:
    fa, fb = _exact(a), _exact(b)
    num = math.lcm(fa.numerator, fb.numerator)
    den = math.gcd(fa.denominator, fb.denominator)
    result = Fraction(num, den)
    return int(result) if result.denominator == 1 else float(result)


_NUMBER_KEYS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
_MAX_KEYS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties", "minContains")
_MIN_KEYS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties", "maxContains")


def _merge(parts: list[Mapping[str, Any]], path: str) -> dict[str, Any]:
    """One schema with the constraints of all `parts` (their conjunction, as far as it goes)."""
    out: dict[str, Any] = {}
    for part in parts:
        for key, val in part.items():
            if key not in out:
                out[key] = val
                continue
            cur = out[key]
            if key == "type":
                out[key] = _meet_types(cur, val, path)
            elif key in ("properties", "patternProperties", "dependentSchemas", "$defs", "definitions"):
                merged = dict(cur)
                for name, sub in val.items():
                    merged[name] = _conj(merged[name], sub) if name in merged else sub
                out[key] = merged
            elif key == "required":
                out[key] = list(cur) + [r for r in val if r not in cur]
            elif key in _MAX_KEYS:
                out[key] = max(cur, val)
            elif key in _MIN_KEYS:
                out[key] = min(cur, val)
            elif key == "multipleOf":
                out[key] = _lcm_multiple(cur, val)
            elif key == "enum":
                out[key] = [v for v in cur if any(_json_eq(v, w) for w in val)]
            elif key == "const":
                if not _json_eq(cur, val):
                    raise UnsupportedSchema(path, "'allOf' requires two different 'const' values")
            elif key in ("items", "additionalProperties", "propertyNames", "contains"):
                out[key] = _conj(cur, val)
            elif key == "prefixItems":
                longer, shorter = (cur, val) if len(cur) >= len(val) else (val, cur)
                out[key] = [_conj(x, shorter[i]) if i < len(shorter) else x for i, x in enumerate(longer)]
            elif key == "uniqueItems":
                out[key] = bool(cur) or bool(val)
            elif key in ("anyOf", "oneOf"):
                out[key] = [_conj(x, y) for x in cur for y in val]
            elif key == "not":
                out[key] = {"anyOf": [cur, val]}
            elif key == "dependentRequired":
                deps = {k: list(v) for k, v in cur.items()}
                for k, v in val.items():
                    deps[k] = deps.get(k, []) + [x for x in v if x not in deps.get(k, [])]
                out[key] = deps
            # anything else (annotations, default, format, pattern, ...): the first one wins
    closed = [p for p in parts if p.get("additionalProperties") is False and "patternProperties" not in p]
    if len(closed) > 0 and len(parts) > 1:
        allowed = set.intersection(*(set(p.get("properties", {})) for p in closed))
        if "properties" in out:
            out["properties"] = {k: v for k, v in out["properties"].items() if k in allowed}
        for name in out.get("required", []):
            if name not in allowed:
                raise UnsupportedSchema(path, f"'allOf' requires {name!r} but also forbids it")
    return out


# --------------------------------------------------------------------------- references


class _Resolver:
    def __init__(self, root: Schema) -> None:
        self.root = root

    def resolve(self, ref: Any, path: str) -> Any:
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise UnsupportedSchema(path, f"'$ref' {ref!r} is not a local JSON pointer")
        pointer = unquote(ref[1:])
        if pointer and not pointer.startswith("/"):
            raise UnsupportedSchema(path, f"'$ref' {ref!r}: anchors are not supported")
        node: Any = self.root
        for raw in pointer.split("/")[1:] if pointer else []:
            token = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(node, Mapping) and token in node:
                node = node[token]
            elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
                node = node[int(token)]
            else:
                raise UnsupportedSchema(path, f"'$ref' {ref!r} does not resolve")
        if not isinstance(node, Mapping | bool):
            raise UnsupportedSchema(path, f"'$ref' {ref!r} is not a schema")
        return node

    def flatten(self, node: Mapping[str, Any], path: str, chain: int = 0) -> dict[str, Any]:
        """`node` with its `$ref` and `allOf` merged in: a dict with neither at the top."""
        if chain > _MAX_CHAIN:
            raise UnsupportedSchema(path, "'$ref' / 'allOf' nesting does not terminate")
        own = {k: v for k, v in node.items() if k not in ("$ref", "allOf")}
        if "$ref" not in node and "allOf" not in node:
            return own
        parts: list[Mapping[str, Any]] = [own]
        subs: list[tuple[Any, str]] = []
        if "$ref" in node:
            subs.append((self.resolve(node["$ref"], path), path))
        for i, sub in enumerate(node.get("allOf", [])):
            subs.append((sub, f"{path}/allOf/{i}"))
        for sub, sub_path in subs:
            if sub is False:
                raise UnsupportedSchema(sub_path, "the false schema admits no value")
            if sub is True:
                continue
            parts.append(self.flatten(sub, sub_path, chain + 1))
        return _merge(parts, path)


# --------------------------------------------------------------------------- checking


class _Checker(_Resolver):
    """`_Resolver` plus jsonschema's validation; `$ref`s in any subschema resolve against the root."""

    def __init__(self, root: Schema) -> None:
        super().__init__(root)
        try:
            self._root: Draft202012Validator | None = Draft202012Validator(root)
        except Exception:  # not a schema at all: the generator reports it
            self._root = None

    def valid(self, value: Any, schema: Any) -> bool:
        """Whether `value` satisfies `schema` (formats unchecked); a malformed schema admits nothing."""
        if self._root is None or not isinstance(schema, Mapping | bool):
            return False
        try:
            return bool(self._root.evolve(schema=schema).is_valid(value))
        except Exception:  # bad pattern, unresolvable $ref, unknown type, $ref cycle, ...
            return False
