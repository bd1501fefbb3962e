"""The parse tables' shape, shared by the format test modules: (text, tools, expected), where
expected is (content, calls), or None for "no calls: all of the text is the content"."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from ostinato.tool_formats import ParsedOutput, ParsedToolCall, ToolSchemas, get_parser

Expected = tuple[str, list[ParsedToolCall]] | None


def parse_params(tables: Mapping[str, Mapping[str, tuple[Any, ...]]]) -> list[Any]:
    """pytest params (family, text, tools, expected) from {family: {label: case}}."""
    return [pytest.param(family, *case, id=f"{family}: {label}")
            for family, cases in tables.items() for label, case in cases.items()]


def assert_parsed(family: str, text: str, tools: ToolSchemas, expected: Expected) -> None:
    parsed = get_parser(family).parse(text, tools)
    if expected is None:
        assert parsed == ParsedOutput(text, ())
    else:
        assert parsed == ParsedOutput(expected[0], tuple(expected[1]))
