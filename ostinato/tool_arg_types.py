"""Typed argument values for formats that write each argument as text (qwen3_coder, glm45).

Such a model writes ``<parameter=days>3</parameter>``: whether that 3 is the number 3 or the
string "3" comes from the tool's parameters schema, read as SGLang reads it
(python/sglang/srt/function_call/utils.py, `get_schema_properties` and
`infer_type_from_json_schema`; the conversions of qwen3_coder_detector.py and
glm4_moe_detector.py). Pure: no I/O.
"""

from __future__ import annotations

import ast
import json
import math
from collections.abc import Mapping
from typing import Any

from ostinato import strict_json

LITERAL_MAX_CHARS = 10_000  # longer text is not read as a Python literal (ast is costly)


def schema_properties(schema: object) -> Mapping[str, Any]:
    """A parameters schema's top-level properties, from its anyOf / oneOf / allOf branches
    when it declares none itself."""
    if not isinstance(schema, Mapping):
        return {}
    properties = schema.get("properties")
    if isinstance(properties, Mapping):
        return properties
    merged: dict[str, Any] = {}
    for keyword in ("anyOf", "oneOf", "allOf"):
        branches = schema.get(keyword)
        if isinstance(branches, list):
            for branch in branches:
                for key, value in schema_properties(branch).items():
                    merged.setdefault(key, value)
    return merged


_ENUM_TYPES = ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"),
               (list, "array"), (dict, "object"))


def _enum_type(value: object) -> str:
    if value is None:
        return "null"
    return next((name for kind, name in _ENUM_TYPES if isinstance(value, kind)), "string")


def schema_type(schema: object) -> str | None:
    """The one type a property's schema gives its values ("string", "integer", "number",
    "boolean", "object", "array", ...); None when it says nothing. Mixed types read as
    "string", an optional one (X or null) as X."""
    if not isinstance(schema, Mapping):
        return None
    kind = schema.get("type")
    if isinstance(kind, str):
        return kind
    if isinstance(kind, list) and kind:
        return next((str(k) for k in kind if k != "null"), "string")
    branches = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(branches, list):
        kinds = [k for k in map(schema_type, branches) if k]
        if kinds:
            distinct = set(kinds)
            if len(distinct) == 1:
                return kinds[0]
            if len(distinct) == 2 and "null" in distinct:
                return next(k for k in kinds if k != "null")
            return "string" if "string" in distinct else kinds[0]
    enum = schema.get("enum")
    if isinstance(enum, list):
        enum_kinds = {_enum_type(v) for v in enum}
        return enum_kinds.pop() if len(enum_kinds) == 1 else "string"
    all_of = schema.get("allOf")
    if isinstance(all_of, list):
        return next((k for k in map(schema_type, all_of) if k and k != "string"), "string")
    if "properties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    return None


def python_literal(text: str) -> tuple[bool, Any]:
    """(True, value) when ``text`` is a Python literal whose value is JSON (True, None,
    {'a': 1}: what a model trained on Python writes); else (False, None)."""
    if len(text) > LITERAL_MAX_CHARS:
        return False, None
    try:
        value = ast.literal_eval(text)
        json.dumps(value, allow_nan=False)  # sets, bytes, complex, NaN: not JSON
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None
    return True, value


def json_value(text: str) -> tuple[bool, Any]:
    """(True, value) when ``text`` is one JSON value (NaN and Infinity are not, nor a
    number beyond a double's range); else (False, None)."""
    try:
        value = strict_json.loads(text)
        json.dumps(value, allow_nan=False)
    except (ValueError, RecursionError):
        return False, None
    return True, value


def _is_integer_type(kind: str) -> bool:
    return kind.startswith(("int", "uint", "long", "short", "unsigned"))


def qwen3_coder_value(raw: str, kind: str | None) -> Any:
    """A qwen3_coder parameter's text as its declared type (None: not declared, kept as
    text); text that is not of the type stays text (false for a boolean), as SGLang has it."""
    if raw.lower() == "null":
        return None
    if kind is None or kind in ("string", "str", "text", "varchar", "char", "enum"):
        return raw
    if _is_integer_type(kind):
        try:
            return int(raw)
        except ValueError:
            return raw
    if kind.startswith(("num", "float")):
        try:
            number = float(raw)
        except ValueError:
            return raw
        if not math.isfinite(number):
            return raw
        whole = "." not in raw and "e" not in raw.lower() and number.is_integer()
        return int(number) if whole else number
    if kind in ("boolean", "bool", "binary"):
        return raw.lower() == "true"
    if kind in ("object", "array", "arr") or kind.startswith(("dict", "list")):
        ok, value = json_value(raw)
        if ok:
            return value
    ok, value = python_literal(raw)
    return value if ok else raw


def _number(text: str) -> Any:
    try:
        number = float(text) if "." in text or "e" in text.lower() else int(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def glm_value(raw: str, kind: str | None) -> Any:
    """A glm45 argument's text as its declared type: JSON if it is JSON (a number written
    as a JSON string is a number for a "number"), a string as written (quotes removed when
    it is a JSON string), a Python literal, else the text."""
    ok, value = json_value(raw)
    if not ok:  # written escaped, as inside a JSON string: {\"a\": 1}
        ok, inner = json_value('"' + raw + '"')
        ok, value = json_value(inner) if ok and isinstance(inner, str) else (False, None)
    if ok:
        if kind == "string":
            return value if isinstance(value, str) else raw
        return _number(value) if kind == "number" and isinstance(value, str) else value
    if kind == "string":  # 'quoted' as Python writes a string: the quotes are not in it
        quoted = len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\""
        return raw[1:-1] if quoted else raw
    ok, value = python_literal(raw)
    return value if ok else raw
