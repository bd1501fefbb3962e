"""JSON instances of JSON Schemas for the sim engine's constrained decoding (json_schema, tool calls)."""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import pytest

from workers.sim.json_instance import instance

SEEDS = range(12)


def check(schema: dict[str, Any] | bool, seeds: range = SEEDS) -> list[Any]:
    """Instances for several seeds, each validated by jsonschema; returned for further asserts."""
    validator = jsonschema.Draft202012Validator(schema)
    out = []
    for seed in seeds:
        value = instance(schema, seed)
        validator.validate(value)
        out.append(value)
    return out


# --------------------------------------------------------------------------- keyword table

CASES: list[tuple[str, dict[str, Any] | bool]] = [
    # types
    ("empty", {}),
    ("true", True),
    ("annotations only", {"title": "Anything", "description": "no constraints"}),
    ("null", {"type": "null"}),
    ("boolean", {"type": "boolean"}),
    ("integer", {"type": "integer"}),
    ("number", {"type": "number"}),
    ("string", {"type": "string"}),
    ("array", {"type": "array"}),
    ("object", {"type": "object"}),
    ("type list", {"type": ["null", "integer", "string"]}),
    ("type list only null", {"type": ["null"]}),
    ("inferred object", {"properties": {"a": {"type": "integer"}}, "required": ["a"]}),
    ("inferred array", {"items": {"type": "boolean"}, "minItems": 2}),
    ("inferred string", {"minLength": 3}),
    ("inferred number", {"minimum": 5, "maximum": 6}),
    # enum / const / default / examples
    ("enum", {"enum": ["red", "green", "blue"]}),
    ("enum mixed", {"enum": [1, "one", None, [1], {"one": 1}]}),
    ("enum with type", {"type": "integer", "enum": ["x", 2, 3.5]}),
    ("const", {"const": {"nested": [1, 2]}}),
    ("const with type", {"type": "string", "const": "fixed"}),
    ("default", {"type": "integer", "default": 42}),
    ("default of wrong type", {"type": "integer", "default": "nope"}),
    ("examples", {"type": "string", "examples": ["first", "second"]}),
    ("pattern settled by enum", {"type": "string", "pattern": "^[A-Z]{3}$", "enum": ["ABC", "DEF"]}),
    ("pattern settled by const", {"type": "string", "pattern": "^v\\d+$", "const": "v2"}),
    ("pattern settled by default", {"type": "string", "pattern": "^\\d{5}$", "default": "12345"}),
    ("pattern settled by examples", {"type": "string", "pattern": "^\\d{5}$", "examples": ["x", "02139"]}),
    # patterns (unanchored, as JSON Schema's: a match padded to minLength where it still finds)
    ("pattern", {"type": "string", "pattern": "^[A-Z]{3}-\\d{4}$"}),
    ("pattern unanchored, padded", {"type": "string", "pattern": "ab+c", "minLength": 12}),
    ("pattern anchored at the start, padded", {"type": "string", "pattern": "^id-", "minLength": 8}),
    ("pattern with a group and its reference", {"type": "string", "pattern": "^(ab|cd)-\\1$"}),
    ("pattern of a negated category", {"type": "string", "pattern": "^[^\\S]{3}[^\\d\\W]$"}),
    ("pattern with classes", {"type": "string", "pattern": "^[^,\\s]{2,5}\\w+[.]\\D$"}),
    ("pattern and format", {"type": "string", "pattern": "^\\d{4}-", "format": "date"}),
    ("pattern in a property", {"type": "object", "properties": {
        "zip": {"type": "string", "pattern": "^\\d{5}(-\\d{4})?$"}}, "required": ["zip"]}),
    # objects
    (
        "properties and required",
        {
            "type": "object",
            "properties": {"a": {"type": "string"}, "b": {"type": "integer"}, "c": {"type": "boolean"}},
            "required": ["a"],
        },
    ),
    (
        "additionalProperties false",
        {
            "type": "object",
            "properties": {"a": {"type": "string"}, "b": {"type": "number"}},
            "required": ["b"],
            "additionalProperties": False,
        },
    ),
    (
        "required not listed",
        {"type": "object", "required": ["x"], "additionalProperties": {"type": "integer"}},
    ),
    ("map", {"type": "object", "additionalProperties": {"type": "integer"}}),
    ("minProperties", {"type": "object", "minProperties": 2, "additionalProperties": {"type": "boolean"}}),
    (
        "maxProperties",
        {
            "type": "object",
            "properties": {k: {"type": "integer"} for k in "abcde"},
            "required": ["d"],
            "maxProperties": 2,
        },
    ),
    (
        "odd property names",
        {"type": "object", "properties": {"a/b": {"type": "string"}, "~x": {"type": "null"}}},
    ),
    # arrays
    ("items", {"type": "array", "items": {"type": "integer", "minimum": 1}}),
    ("minItems", {"type": "array", "items": {"type": "string"}, "minItems": 5}),
    ("maxItems 0", {"type": "array", "items": {"type": "string"}, "maxItems": 0}),
    ("minItems = maxItems", {"type": "array", "items": {"type": "number"}, "minItems": 3, "maxItems": 3}),
    (
        "prefixItems",
        {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]},
    ),
    (
        "prefixItems closed",
        {"type": "array", "prefixItems": [{"type": "boolean"}], "items": False, "minItems": 1},
    ),
    (
        "prefixItems then items",
        {"type": "array", "prefixItems": [{"const": "head"}], "items": {"type": "integer"}, "minItems": 4},
    ),
    ("uniqueItems", {"type": "array", "items": {"type": "integer"}, "minItems": 4, "uniqueItems": True}),
    (
        "uniqueItems of enum",
        {"type": "array", "items": {"enum": ["a", "b"]}, "minItems": 2, "maxItems": 2, "uniqueItems": True},
    ),
    # strings
    ("minLength", {"type": "string", "minLength": 40}),
    ("maxLength", {"type": "string", "maxLength": 3}),
    ("maxLength 0", {"type": "string", "maxLength": 0}),
    ("exact length", {"type": "string", "minLength": 6, "maxLength": 6}),
    ("length window", {"type": "string", "minLength": 11, "maxLength": 12}),
    *(
        (f"format {f}", {"type": "string", "format": f})
        for f in ("date", "date-time", "email", "uri", "uuid")
    ),
    ("format with bounds", {"type": "string", "format": "date", "minLength": 10, "maxLength": 10}),
    ("unknown format", {"type": "string", "format": "x-custom", "maxLength": 8}),
    # numbers
    ("integer bounds", {"type": "integer", "minimum": -3, "maximum": 3}),
    ("integer single value", {"type": "integer", "minimum": 7, "maximum": 7}),
    ("integer exclusive", {"type": "integer", "exclusiveMinimum": 1, "exclusiveMaximum": 3}),
    ("integer fractional bounds", {"type": "integer", "minimum": 0.5, "maximum": 1.5}),
    ("integer only maximum", {"type": "integer", "maximum": -1000}),
    ("integer only minimum", {"type": "integer", "minimum": 10**20}),
    ("integer multipleOf", {"type": "integer", "minimum": 10, "maximum": 40, "multipleOf": 7}),
    ("integer multipleOf float", {"type": "integer", "multipleOf": 2.5}),
    ("integer multipleOf large", {"type": "integer", "multipleOf": 1000}),
    ("number bounds", {"type": "number", "minimum": 1.5, "maximum": 2.5}),
    ("number exclusive", {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}),
    ("number tiny range", {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1e-9}),
    ("number point", {"type": "number", "minimum": 3.25, "maximum": 3.25}),
    ("number negative", {"type": "number", "exclusiveMaximum": -5}),
    ("number multipleOf", {"type": "number", "multipleOf": 0.1, "minimum": 0.25, "maximum": 1}),
    ("number multipleOf 0.01", {"type": "number", "multipleOf": 0.01, "exclusiveMinimum": 0}),
    ("number multipleOf int", {"type": "number", "multipleOf": 5, "minimum": 1, "maximum": 11}),
    # combinators
    ("anyOf", {"anyOf": [{"type": "string", "maxLength": 4}, {"type": "integer"}]}),
    ("anyOf null first", {"anyOf": [{"type": "null"}, {"type": "integer", "minimum": 1}]}),
    ("anyOf with sibling", {"type": "object", "anyOf": [{"required": ["a"]}, {"required": ["b"]}]}),
    ("oneOf overlapping", {"oneOf": [{"type": "number"}, {"type": "integer"}]}),
    (
        "oneOf objects",
        {
            "oneOf": [
                {"type": "object", "properties": {"kind": {"const": "a"}}, "required": ["kind"]},
                {"type": "object", "properties": {"kind": {"const": "b"}}, "required": ["kind"]},
            ]
        },
    ),
    (
        "oneOf first branch unsatisfiable",
        {"oneOf": [{"type": "string", "pattern": "^(?=x)"}, {"type": "boolean"}]},
    ),
    (
        "allOf objects",
        {
            "allOf": [
                {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
                {"properties": {"b": {"type": "string"}, "a": {"minimum": 100}}, "required": ["b"]},
            ]
        },
    ),
    ("allOf numbers", {"allOf": [{"type": "number", "minimum": 0}, {"type": "integer", "maximum": 5}]}),
    ("allOf multipleOf", {"allOf": [{"type": "integer", "multipleOf": 4}, {"multipleOf": 6}]}),
    ("allOf enums", {"allOf": [{"enum": [1, 2, 3]}, {"enum": [3, 2]}, {"not": {"const": 2}}]}),
    (
        "allOf closed part",
        {
            "allOf": [
                {"properties": {"a": {"type": "integer"}}, "additionalProperties": False},
                {"properties": {"a": {"maximum": 0}, "b": {"type": "string"}}},
            ]
        },
    ),
    # references
    ("$ref $defs", {"$defs": {"Id": {"type": "integer", "minimum": 1}}, "$ref": "#/$defs/Id"}),
    ("$ref definitions", {"definitions": {"Id": {"type": "string"}}, "items": {"$ref": "#/definitions/Id"}}),
    (
        "$ref with siblings",
        {"$defs": {"N": {"type": "integer"}}, "properties": {"n": {"$ref": "#/$defs/N", "maximum": -7}}},
    ),
    ("$ref escaped", {"$defs": {"a/b c": {"const": 1}}, "$ref": "#/$defs/a~1b%20c"}),
    (
        "$ref recursive list",
        {
            "$defs": {
                "Node": {
                    "type": "object",
                    "properties": {
                        "v": {"type": "integer"},
                        "kids": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
                    },
                    "required": ["v", "kids"],
                }
            },
            "$ref": "#/$defs/Node",
        },
    ),
    (
        "$ref recursive optional",
        {
            "$defs": {
                "L": {
                    "type": "object",
                    "properties": {
                        "head": {"type": "string"},
                        "tail": {"anyOf": [{"$ref": "#/$defs/L"}, {"type": "null"}]},
                    },
                    "required": ["head", "tail"],
                }
            },
            "$ref": "#/$defs/L",
        },
    ),
    ("$ref root", {"type": "object", "properties": {"self": {"$ref": "#"}, "n": {"type": "integer"}}}),
    # checked-only keywords that the built value happens to satisfy
    ("not", {"type": "integer", "minimum": 0, "maximum": 10**6, "not": {"const": -1}}),
    (
        "propertyNames",
        {"type": "object", "properties": {"abc": {"type": "integer"}}, "propertyNames": {"maxLength": 3}},
    ),
    ("dependentRequired", {"properties": {"a": {}, "b": {}}, "dependentRequired": {"a": ["b"]}}),
    (
        "if/then",
        {
            "type": "object",
            "properties": {"a": {"type": "integer"}},
            "required": ["a"],
            "if": {"required": ["zzz"]},
            "then": False,
        },
    ),
]


@pytest.mark.parametrize(("name", "schema"), CASES, ids=[name for name, _ in CASES])
def test_instance_is_valid(name: str, schema: dict[str, Any] | bool) -> None:
    check(schema)


def test_keyword_specifics() -> None:
    assert check({}) == check(True)
    assert all(isinstance(v, str) and v for v in check({}))
    assert all(isinstance(v, int) and not isinstance(v, bool) for v in check({"type": "integer"}))
    assert all(v is not None for v in check({"type": ["null", "integer", "string"]}))
    assert set(check({"enum": ["red", "green", "blue"]})) <= {"red", "green", "blue"}
    assert check({"type": "integer", "enum": ["x", 2, 3.5]}) == [2] * len(SEEDS)
    assert check({"type": "integer", "default": 42}) == [42] * len(SEEDS)
    assert check({"type": "string", "examples": ["first", "second"]}) == ["first"] * len(SEEDS)
    assert check({"type": "object"}) == [{}] * len(SEEDS)
    assert all(len(v) in (1, 2) for v in check({"type": "array"}))
    assert check({"type": "string", "maxLength": 0}) == [""] * len(SEEDS)
    assert check({"type": "integer", "minimum": 7, "maximum": 7}) == [7] * len(SEEDS)
    assert all(v % 1000 == 0 for v in check({"type": "integer", "multipleOf": 1000}))
    everything = check(
        {
            "type": "object",
            "properties": {"a": {"type": "string"}, "b": {"type": "integer"}},
            "required": ["a"],
        }
    )
    assert all(list(v) == ["a", "b"] for v in everything)  # optional properties too, in schema order
    assert all(v is not None for v in check({"anyOf": [{"type": "null"}, {"type": "integer"}]}))


def test_strings_look_like_text() -> None:
    for value in check({"type": "string", "minLength": 30}):
        assert re.fullmatch(r"[a-z]+( [a-z]+)*", value), value
    for value in check({"type": "string", "minLength": 5, "maxLength": 9}):
        assert 5 <= len(value) <= 9 and not value.endswith(" ")


@pytest.mark.parametrize(
    ("fmt", "shape"),
    [
        ("date", r"\d{4}-\d{2}-\d{2}"),
        ("date-time", r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z"),
        ("email", r"[a-z]+@example\.com"),
        ("uri", r"https://example\.com/[a-z]+"),
        ("uuid", r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"),
    ],
)
def test_formats(fmt: str, shape: str) -> None:
    schema = {"type": "string", "format": fmt}
    checker = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    for seed in SEEDS:
        value = instance(schema, seed)
        assert re.fullmatch(shape, value), value
        checker.validate(value)


def test_recursion_is_bounded() -> None:
    schema = dict(CASES)["$ref recursive list"]

    def depth(node: dict[str, Any]) -> int:
        return 1 + max((depth(k) for k in node["kids"]), default=0)

    assert all(depth(v) <= 4 for v in check(schema))
    linked = dict(CASES)["$ref recursive optional"]
    for value in check(linked):
        hops = 0
        while value is not None:
            value, hops = value["tail"], hops + 1
        assert 1 < hops <= 5  # objects at depths 0..4, then null


# --------------------------------------------------------------------------- determinism


DETERMINISM = [
    {"type": "string"},
    {"type": "number", "minimum": 0, "maximum": 1000},
    {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "array", "items": {"type": "string"}}},
    },
]


@pytest.mark.parametrize("schema", DETERMINISM)
def test_same_seed_same_instance_and_seeds_differ(schema: dict[str, Any]) -> None:
    first = [instance(schema, seed) for seed in SEEDS]
    assert first == [instance(schema, seed) for seed in SEEDS]
    assert len({repr(v) for v in first}) > 1


def test_odd_seeds() -> None:
    for seed in (0, -1, 2**64, -(2**70), 12345678901234567890):
        assert instance({"type": "string"}, seed) == instance({"type": "string"}, seed)
        check({"type": "integer", "minimum": 0, "maximum": 3}, range(seed, seed + 2))


def test_schema_is_not_mutated() -> None:
    schema = {
        "allOf": [{"properties": {"a": {"type": "integer"}}}, {"properties": {"a": {"minimum": 1}}}],
        "$defs": {"X": {"const": [1]}},
        "properties": {"x": {"$ref": "#/$defs/X"}},
    }
    before = repr(schema)
    value = check(schema)[0]
    value["x"].append(2)  # the const is copied, not shared
    assert repr(schema) == before


def test_an_any_of_branch_is_drawn_from_the_seed() -> None:
    """A forced tool call's array of `anyOf` a tool's call each: the tool is the prompt's
    (seed's), not always the first listed (framework review F4); a null branch still last,
    and the same seed the same branch."""
    tools = {"anyOf": [{"const": name} for name in ("first", "second", "third")]}
    assert {instance(tools, seed) for seed in range(30)} == {"first", "second", "third"}
    assert instance(tools, 7) == instance(tools, 7)
    optional = {"anyOf": [{"type": "null"}, {"const": "x"}]}
    assert {instance(optional, seed) for seed in range(10)} == {"x"}
