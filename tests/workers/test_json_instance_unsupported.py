"""Schemas the sim engine's JSON instances do not support are refused with what and where."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from workers.sim.json_instance import UnsupportedSchema, instance


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "string", "pattern": "^(?!a)"}, "schema at /: 'pattern': lookarounds are not"),
        (
            {"type": "object", "properties": {"x": {"type": "string", "pattern": "(?<=a)b"}}},
            "schema at /properties/x: 'pattern': lookarounds are not supported",
        ),
        (
            {"type": "array", "items": {"type": "object", "properties": {"a/b": {"pattern": "(z"}}}},
            "schema at /items/properties/a~1b: 'pattern' '(z' is not a regular expression",
        ),
        (
            {
                "$defs": {"Zip": {"type": "string", "pattern": "^\\d{5}$", "maxLength": 4}},
                "properties": {"zip": {"$ref": "#/$defs/Zip"}},
            },
            "schema at /properties/zip: no string of the lengths allowed was found for 'pattern'",
        ),
        ({"type": "string", "pattern": "(a)(?(1)b|c)"}, "'pattern': conditionals are not supported"),
        ({"type": "string", "pattern": "[^\\s\\S]"}, "a character class no character fits"),
        (False, "schema at /: the false schema admits no value"),
        (
            {"type": "object", "properties": {"never": False}, "required": ["never"]},
            "schema at /properties/never: the false schema admits no value",
        ),
        (
            {"type": "array", "prefixItems": [False], "minItems": 1},
            "schema at /prefixItems/0: the false schema",
        ),
        ({"anyOf": [False, {"pattern": "(?!x)"}]}, "schema at /anyOf/1: 'pattern': lookarounds"),
        ({"oneOf": [False, False]}, "schema at /: 'oneOf' has no branch that admits a value"),
        ({"type": "integer", "minimum": 5, "maximum": 4}, "schema at /: no integer satisfies the bounds"),
        ({"type": "integer", "minimum": 0.2, "maximum": 0.8}, "schema at /: no integer"),
        ({"type": "number", "exclusiveMinimum": 1, "exclusiveMaximum": 1}, "schema at /: no number"),
        ({"type": "string", "minLength": 5, "maxLength": 4}, "schema at /: 'maxLength' is below 'minLength'"),
        ({"enum": [1, 2], "type": "string"}, "schema at /: no 'enum' value"),
        (
            {"allOf": [{"type": "string"}, {"type": "integer"}]},
            "schema at /: 'allOf' requires incompatible types",
        ),
        ({"$ref": "#/$defs/Missing"}, "schema at /: '$ref' '#/$defs/Missing' does not resolve"),
        ({"$ref": "https://example.com/s.json"}, "is not a local JSON pointer"),
        ({"$defs": {"A": {"$ref": "#/$defs/A"}}, "$ref": "#/$defs/A"}, "does not terminate"),
        (
            {
                "$defs": {
                    "N": {"type": "object", "properties": {"n": {"$ref": "#/$defs/N"}}, "required": ["n"]}
                },
                "$ref": "#/$defs/N",
            },
            "recursion does not terminate",
        ),
        (
            {"type": "integer", "minimum": 0, "maximum": 0, "not": {"const": 0}},
            "schema at /: 'not' is not supported",
        ),
        (
            {"type": "array", "items": {"type": "integer"}, "contains": {"type": "string"}},
            "'contains' is not supported",
        ),
        (
            {"type": "object", "required": ["x"], "additionalProperties": False},
            "forbidden by 'additionalProperties'",
        ),
        ({"type": "array", "items": {"const": 1}, "minItems": 2, "uniqueItems": True}, "'uniqueItems'"),
    ],
)
def test_unsupported(schema: dict[str, Any] | bool, message: str) -> None:
    with pytest.raises(UnsupportedSchema) as err:
        instance(schema, 0)
    assert str(err.value).startswith(message) or message in str(err.value), str(err.value)
    assert isinstance(err.value, ValueError)


def test_unsupported_pickles_and_carries_path() -> None:
    err = UnsupportedSchema("/properties/x", "'pattern' is not supported")
    assert (err.path, err.reason) == ("/properties/x", "'pattern' is not supported")
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == str(err) == "schema at /properties/x: 'pattern' is not supported"
