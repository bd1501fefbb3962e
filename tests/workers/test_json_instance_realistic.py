"""JSON instances for the schemas clients really send: a pydantic model with $defs and enums,
a tool-call array for tool_choice "required", and each tool's parameters."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from tests.workers.test_json_instance import check

PERSON = {  # what pydantic v2 emits for a Person model with an Address model and a list of enums
    "$defs": {
        "Address": {
            "properties": {
                "street": {"title": "Street", "type": "string"},
                "city": {"maxLength": 40, "minLength": 2, "title": "City", "type": "string"},
                "zip": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None, "title": "Zip"},
                "country": {"$ref": "#/$defs/Country", "default": "NL"},
            },
            "required": ["street", "city"],
            "title": "Address",
            "type": "object",
        },
        "Country": {"enum": ["NL", "DE", "FR"], "title": "Country", "type": "string"},
        "Tag": {"enum": ["friend", "colleague", "family"], "title": "Tag", "type": "string"},
        "Person": {
            "properties": {
                "name": {"title": "Name", "type": "string"},
                "age": {"maximum": 130, "minimum": 0, "title": "Age", "type": "integer"},
                "address": {"$ref": "#/$defs/Address"},
                "tags": {"items": {"$ref": "#/$defs/Tag"}, "title": "Tags", "type": "array", "minItems": 1},
                "email": {
                    "anyOf": [{"format": "email", "type": "string"}, {"type": "null"}],
                    "title": "Email",
                },
                "score": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "title": "Score"},
                "children": {"items": {"$ref": "#/$defs/Person"}, "title": "Children", "type": "array"},
            },
            "required": ["name", "age", "address", "tags", "email", "children"],
            "title": "Person",
            "type": "object",
        },
    },
    "$ref": "#/$defs/Person",
}


def test_pydantic_like_schema() -> None:
    for person in check(PERSON):
        assert set(person) == {"name", "age", "address", "tags", "email", "score", "children"}
        assert set(person["address"]) == {"street", "city", "zip", "country"}
        assert person["address"]["zip"] is None and person["address"]["country"] == "NL"  # the defaults
        assert person["tags"] and set(person["tags"]) <= {"friend", "colleague", "family"}
        assert isinstance(person["email"], str) and person["email"].endswith("@example.com")


def tool_call_schema(tools: list[dict[str, Any]]) -> dict[str, Any]:
    """The array schema SGLang constrains to for tool_choice="required"."""
    return {
        "type": "array",
        "minItems": 1,
        "items": {
            "type": "object",
            "anyOf": [
                {
                    "properties": {
                        "name": {"type": "string", "enum": [tool["name"]]},
                        "parameters": tool["parameters"],
                    },
                    "required": ["name", "parameters"],
                }
                for tool in tools
            ],
        },
    }


TOOLS = [
    {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "City and country"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 14},
            },
            "required": ["location", "unit"],
            "additionalProperties": False,
        },
    },
    {
        "name": "search",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string", "minLength": 1}, "top_k": {"type": "integer"}},
            "required": ["query"],
        },
    },
    {"name": "now", "parameters": {"type": "object", "properties": {}}},
]


def test_tool_call_array_for_tool_choice_required() -> None:
    by_name = {tool["name"]: tool for tool in TOOLS}
    for calls in check(tool_call_schema(TOOLS)):
        assert len(calls) >= 1
        for call in calls:
            assert set(call) == {"name", "parameters"}
            assert call["name"] in by_name
            jsonschema.Draft202012Validator(by_name[call["name"]]["parameters"]).validate(call["parameters"])


@pytest.mark.parametrize("tool", TOOLS, ids=[t["name"] for t in TOOLS])
def test_tool_arguments_from_parameters(tool: dict[str, Any]) -> None:
    for args in check(tool["parameters"]):
        assert set(tool["parameters"].get("required", [])) <= set(args)
    check(tool_call_schema([tool]))
