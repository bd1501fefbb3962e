"""Argument text typed by a tool's schema, as SGLang's qwen3_coder and glm45 detectors type it."""

from __future__ import annotations

from typing import Any

import pytest

from ostinato.tool_arg_types import (
    glm_value,
    python_literal,
    qwen3_coder_value,
    schema_properties,
    schema_type,
)


@pytest.mark.parametrize(("schema", "expected"), [
    ({"type": "integer"}, "integer"),
    ({"type": ["null", "number"]}, "number"),
    ({"type": ["null"]}, "string"),
    ({"anyOf": [{"type": "integer"}, {"type": "null"}]}, "integer"),
    ({"oneOf": [{"type": "integer"}, {"type": "string"}]}, "string"),
    ({"anyOf": [{"type": "integer"}, {"type": "boolean"}]}, "integer"),
    ({"anyOf": [{"type": "array"}, {"type": "array"}]}, "array"),
    ({"enum": ["a", "b"]}, "string"),
    ({"enum": [1, 2]}, "integer"),
    ({"enum": [True, False]}, "boolean"),
    ({"enum": [1, "a"]}, "string"),
    ({"enum": []}, "string"),
    ({"allOf": [{"description": "x"}, {"type": "object"}]}, "object"),
    ({"allOf": [{"type": "string"}]}, "string"),
    ({"properties": {"a": {}}}, "object"),
    ({"items": {"type": "integer"}}, "array"),
    ({"description": "anything"}, None),
    ("not a schema", None),
])
def test_schema_type(schema: object, expected: str | None) -> None:
    assert schema_type(schema) == expected


def test_schema_properties_from_branches() -> None:
    schema = {"oneOf": [{"properties": {"a": {"type": "integer"}}},
                        {"properties": {"a": {"type": "string"}, "b": {"type": "boolean"}}}]}
    assert schema_properties(schema) == {"a": {"type": "integer"}, "b": {"type": "boolean"}}
    assert schema_properties({"properties": {"x": {}}}) == {"x": {}}
    assert schema_properties([]) == {}


@pytest.mark.parametrize(("raw", "kind", "expected"), [
    ("Paris", None, "Paris"),
    ("3", None, "3"),  # not declared: text
    ("3", "string", "3"),
    ("null", "string", None),
    ("NULL", "integer", None),
    ("3", "integer", 3),
    ("3.5", "integer", "3.5"),
    ("3", "number", 3),
    ("3.0", "number", 3.0),
    ("1e3", "number", 1000.0),
    ("inf", "number", "inf"),
    ("abc", "number", "abc"),
    ("True", "boolean", True),
    ("false", "boolean", False),
    ("yes", "boolean", False),
    ('{"a": [1, 2]}', "object", {"a": [1, 2]}),
    ("{'a': None}", "object", {"a": None}),
    ("[1, 2", "array", "[1, 2"),
    ("(1, 2)", "object", (1, 2)),  # written as a JSON array
    ("{1, 2}", "object", "{1, 2}"),  # a set is not JSON
    ("x" * 20_000, "object", "x" * 20_000),
])
def test_qwen3_coder_value(raw: str, kind: str | None, expected: Any) -> None:
    assert qwen3_coder_value(raw, kind) == expected


@pytest.mark.parametrize(("raw", "kind", "expected"), [
    ("Paris", "string", "Paris"),
    ('"Paris"', "string", "Paris"),
    ("3", "string", "3"),
    ("true", "string", "true"),
    ("3", None, 3),
    ("Paris", None, "Paris"),
    ("3", "integer", 3),
    ('"3.5"', "number", 3.5),
    ('"x"', "number", "x"),
    ('{"a": 1}', "object", {"a": 1}),
    ("{'a': True}", "object", {"a": True}),
    ("NaN", "number", "NaN"),
    ("1e999", "number", "1e999"),  # past a double's range: no JSON number
    ("[1e999]", "array", "[1e999]"),
    ("'Rome'", "string", "Rome"),
    ('{\\"a\\": 1}', None, {"a": 1}),
    ("not json", "array", "not json"),
])
def test_glm_value(raw: str, kind: str | None, expected: Any) -> None:
    assert glm_value(raw, kind) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("None", (True, None)), ("{'a': (1,)}", (True, {"a": (1,)})), ("float('nan')", (False, None)),
    ("b'x'", (False, None)), ("1e999", (False, None)), ("", (False, None)),
])
def test_python_literal(text: str, expected: tuple[bool, Any]) -> None:
    assert python_literal(text) == expected
