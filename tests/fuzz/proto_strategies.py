"""Hypothesis strategies for any protobuf message, from its descriptor: odd text (NULs,
right-to-left marks, emoji, very long strings, templates), boundary integers, NaN and
infinities, out-of-range enum values, empty and missing fields, nested to a depth."""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import strategies as st

ODD_TEXT = ["", " ", "\x00", "a\x00b", "\u202eevil\u202c", "\u200f\u05e9\u05dc\u05d5\u05dd",
            "\ufeff", "\U0001f600" * 50, "e\u0301" * 30, "{{x}}", "{{ missing }}", "../../etc",
            "a/b", "\n\r\t", "'\"\\", "x" * 200, "\u0000" * 64, "NaN", "-1", "user",
            "assistant", "tool", "system", "main"]
HUGE = ["y" * 30_000, "\U0001f600" * 25_000, "z" * 1_000_000]  # past the fuzz mesh's limits


def text(max_size: int = 40) -> st.SearchStrategy[str]:
    """Unicode without lone surrogates (protobuf strings are UTF-8; see the wire tests)."""
    return st.one_of(st.sampled_from(ODD_TEXT),
                     st.text(st.characters(exclude_categories=["Cs"]), max_size=max_size))


def prompt_text() -> st.SearchStrategy[str]:
    """Prompts: odd text, now and then one past the gateway's size limit."""
    return st.one_of(text(), text(), text(), st.sampled_from(HUGE))


_INT_BOUNDS = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1), FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1), FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1), FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1), FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1), FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


def integers(lo: int, hi: int) -> st.SearchStrategy[int]:
    edges = [v for v in (lo, hi, 0, 1, -1, 2, 255, 256, 2**31 - 1, 2**32 - 1) if lo <= v <= hi]
    return st.one_of(st.sampled_from(edges), st.integers(lo, hi))


def _scalar(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    t = field.type
    if t == FieldDescriptor.TYPE_STRING:
        return text()
    if t == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64)
    if t == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        width = 64 if t == FieldDescriptor.TYPE_DOUBLE else 32
        return st.one_of(st.sampled_from([0.0, -0.0, 1.0, -1.0, 1e-300, 1e308, float("inf"),
                                          float("-inf"), float("nan")]),
                         st.floats(width=width))
    if t == FieldDescriptor.TYPE_ENUM:
        known = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(known), integers(-(2**31), 2**31 - 1))
    if t == FieldDescriptor.TYPE_MESSAGE:
        return messages(field.message_type, depth + 1)
    return integers(*_INT_BOUNDS[t])


def _field(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        key, value = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
        return st.dictionaries(_scalar(key, depth), _scalar(value, depth), max_size=3)
    if field.is_repeated:
        return st.lists(_scalar(field, depth), max_size=3 if depth else 4)
    return _scalar(field, depth)


def messages(descriptor: Descriptor, depth: int = 0, max_depth: int = 3,
             **fixed: st.SearchStrategy[Any]) -> st.SearchStrategy[Message]:
    """Messages of `descriptor` with any subset of their fields set (`fixed`: strategies
    for chosen fields). Beyond max_depth nested messages are left empty."""
    cls = GetMessageClass(descriptor)
    if depth > max_depth:
        return st.just(cls())
    optional = {f.name: _field(f, depth) for f in descriptor.fields if f.name not in fixed}
    return st.fixed_dictionaries(fixed, optional=optional).map(lambda kw: cls(**kw))
