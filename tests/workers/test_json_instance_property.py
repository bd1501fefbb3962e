"""Property test of the sim engine's JSON instances: for generated schemas (integers, numbers,
strings, arrays, nested objects, $refs), every instance validates and a seed gives the same
instance again."""

from __future__ import annotations

from typing import Any

import jsonschema
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.sim.json_instance import instance


def _bounds(draw: st.DrawFn, lo_key: str, hi_key: str, lo: int, width: int) -> dict[str, int]:
    out = {}
    if draw(st.booleans()):
        out[lo_key] = lo
    if draw(st.booleans()):
        out[hi_key] = lo + width
    return out


@st.composite
def integer_schemas(draw: st.DrawFn) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer"}
    step = draw(st.sampled_from([None, 1, 2, 3, 7, 0.5, 2.5]))
    lo = draw(st.integers(-1000, 1000))
    width = draw(st.integers(0, 100)) + (2 * int(step or 1) + 2)
    exclusive = draw(st.booleans())
    schema |= _bounds(draw, "exclusiveMinimum" if exclusive else "minimum", "maximum", lo, width)
    if step is not None:
        schema["multipleOf"] = step
    return schema


@st.composite
def number_schemas(draw: st.DrawFn) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "number"}
    step = draw(st.sampled_from([None, None, 0.1, 0.25, 0.01, 3]))
    lo = draw(st.floats(-1e6, 1e6, allow_nan=False) | st.integers(-1000, 1000))
    width = draw(st.floats(1e-6, 1e4)) + (3 * step if step else 0)
    low_key = draw(st.sampled_from(["minimum", "exclusiveMinimum"]))
    high_key = draw(st.sampled_from(["maximum", "exclusiveMaximum"]))
    if draw(st.booleans()):
        schema[low_key] = lo
    if draw(st.booleans()):
        schema[high_key] = lo + width
    if step is not None:
        schema["multipleOf"] = step
    return schema


@st.composite
def string_schemas(draw: st.DrawFn) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    fmt = draw(st.sampled_from([None, None, "date", "date-time", "email", "uri", "uuid"]))
    if fmt is not None:
        schema["format"] = fmt
        return schema
    lo = draw(st.integers(0, 40))
    schema |= _bounds(draw, "minLength", "maxLength", lo, draw(st.integers(0, 20)))
    return schema


@st.composite
def array_schemas(draw: st.DrawFn) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "array", "items": draw(primitive_schemas)}
    schema |= _bounds(draw, "minItems", "maxItems", draw(st.integers(0, 5)), draw(st.integers(0, 4)))
    return schema


primitive_schemas = st.one_of(
    integer_schemas(),
    number_schemas(),
    string_schemas(),
    st.just({"type": "boolean"}),
    st.just({"type": "null"}),
    st.lists(st.text("abc", max_size=3) | st.integers(), min_size=1, max_size=4).map(lambda e: {"enum": e}),
    st.integers().map(lambda c: {"const": c}),
    st.sampled_from([["string", "null"], ["null", "integer"], ["boolean", "number"]]).map(
        lambda t: {"type": t}
    ),
)


@st.composite
def object_schemas(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from("abcdefgh"), unique=True, max_size=6))
    props = {name: draw(primitive_schemas | array_schemas()) for name in names}
    schema: dict[str, Any] = {"type": "object", "properties": props}
    schema["required"] = [name for name in names if draw(st.booleans())]
    if draw(st.booleans()):
        schema["additionalProperties"] = False
    if draw(st.booleans()):  # wrapped the way pydantic nests models
        schema = {
            "$defs": {"Model": schema},
            "type": "object",
            "properties": {"m": {"$ref": "#/$defs/Model"}},
        }
    return schema


@settings(max_examples=300, deadline=None)
@given(schema=object_schemas(), seed=st.integers(-(2**63), 2**64))
def test_property_instances_validate(schema: dict[str, Any], seed: int) -> None:
    value = instance(schema, seed)
    jsonschema.Draft202012Validator(schema).validate(value)
    assert instance(schema, seed) == value
