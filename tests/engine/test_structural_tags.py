"""Our structural tags (ostinato/tool_grammars.py) in SGLang's own xgrammar (`make
test-engine`; its environment is built by `make sglang-cpu`): every family's grammar
compiles; the sim engine's text under it (workers/sim/structural_tag.py: calls, or the JSON
answer) and our renderer's calls are admitted; and what breaks a call's parameters (their
order, a type, a bound, an undeclared or missing key, too many blanks) is refused."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ostinato.tool_formats import ParsedToolCall, get_parser, render_tool_calls
from ostinato.tool_grammars import MAX_WHITESPACE, answer_or_calls
from tests.workers.test_sim_structural_tag import ANSWER, PARAMETERS
from workers.sim.json_instance import instance
from workers.sim.structural_tag import written_for

pytestmark = pytest.mark.engine

SCRIPT = Path(__file__).with_name("xgrammar_accepts.py")
FAMILIES = ("hermes", "qwen25", "llama3", "mistral", "qwen3_coder", "glm45")
XML_FAMILIES = ("qwen3_coder", "glm45")
FORECAST = {"type": "object", "properties": {
    "city": {"type": "string"}, "days": {"type": "integer", "minimum": 1, "maximum": 7}},
    "required": ["city", "days"], "additionalProperties": False}


def _call(name: str, arguments: dict[str, Any]) -> ParsedToolCall:
    return ParsedToolCall(name, json.dumps(arguments, ensure_ascii=False))


def _rendered(family: str, calls: list[ParsedToolCall]) -> str:
    """Our renderer's calls (a JSON call goes without llama3's <|python_tag|>)."""
    return render_tool_calls(family, calls).removeprefix("<|python_tag|>")


def _qwen(*params: tuple[str, str], name: str = "forecast") -> str:
    body = "\n".join(f"<parameter={k}>{v}</parameter>" for k, v in params)
    return f"<tool_call>\n<function={name}>\n{body}\n</function>\n</tool_call>"


def _glm(*args: tuple[str, str], name: str = "forecast") -> str:
    body = "".join(f"<arg_key>{k}</arg_key>\n<arg_value>{v}</arg_value>\n" for k, v in args)
    return f"<tool_call>{name}\n{body}</tool_call>"


BLANKS = " " * (MAX_WHITESPACE + 1)
# (family, text, admitted) under a tag of FORECAST alone, one call
BY_HAND: list[tuple[str, str, bool]] = [
    ("qwen3_coder", _qwen(("city", "\nLyon\n"), ("days", "\n3\n")), True),
    ("qwen3_coder", _qwen(("city", "Lyon"), ("days", " 3 ")), True),
    ("qwen3_coder", _qwen(("days", "\n3\n"), ("city", "\nLyon\n")), False),  # order
    ("qwen3_coder", _qwen(("city", "\nLyon\n"), ("days", "\nthree\n")), False),  # type
    ("qwen3_coder", _qwen(("city", "\nLyon\n"), ("days", "\n9\n")), False),  # maximum
    ("qwen3_coder", _qwen(("city", "\nLyon\n")), False),  # required
    ("qwen3_coder", _qwen(("city", "\nLyon\n"), ("days", "\n3\n"), ("x", "\n1\n")), False),
    ("qwen3_coder", _qwen(("city", "\nLyon\n"), ("days", BLANKS + "3")), False),  # blanks
    ("qwen3_coder", _qwen(("city", "Lyon"), ("days", "3"), name="other"), False),
    ("qwen3_coder", "Sure.\n" + _qwen(("city", "Lyon"), ("days", "3")), False),
    ("glm45", _glm(("city", "Lyon"), ("days", "3")), True),
    ("glm45", "<tool_call>forecast\n<arg_key>city</arg_key><arg_value>Lyon</arg_value>"
              "<arg_key>days</arg_key> <arg_value> 3\n</arg_value></tool_call>", True),
    ("glm45", _glm(("days", "3"), ("city", "Lyon")), False),
    ("glm45", _glm(("city", "Lyon"), ("days", '"3"')), False),
    ("glm45", _glm(("city", "Lyon"), ("days", "0")), False),
    ("glm45", _glm(("city", "Lyon")), False),
    ("glm45", _glm(("city", "Lyon"), ("days", "3"), ("x", "1")), False),
    ("glm45", _glm(("city", "Lyon"), ("days", BLANKS + "3")), False),
    ("glm45", "<tool_call>forecast<arg_key>city</arg_key><arg_value>Lyon</arg_value>"
              "<arg_key>days</arg_key><arg_value>3</arg_value></tool_call>", False),  # name's \n
    # the template's call without arguments: the grammar wants an empty line (SGLang's tag)
    ("qwen3_coder", "<tool_call>\n<function=forecast>\n</function>\n</tool_call>", False),
]


def cases() -> list[tuple[str, str, str, bool]]:
    """(what, tag, text, admitted)"""
    out = []
    for family in FAMILIES:
        for case, params in PARAMETERS.items():
            tools = {"f": params, "g": PARAMETERS["numbers"]}
            for single in (False, True):
                tag = answer_or_calls(ANSWER, family, tools, single) or ""
                for choice in (0, 1, 7):
                    for wants_call in (True, False):
                        out.append((f"{family} sim {case} {choice} {wants_call}", tag,
                                    written_for(tag, choice, wants_call), True))
                calls = [_call(name, instance({**p, "type": "object"}, 3))
                         for name, p in tools.items()]
                # (Qwen3-Coder's call without arguments has no empty line: BY_HAND)
                whole = family != "qwen3_coder" or case != "no parameters"
                out.append((f"{family} render {case} two calls", tag,
                            _rendered(family, calls), whole and not single))
    for family, text, admitted in BY_HAND:
        tag = answer_or_calls(ANSWER, family, {"forecast": FORECAST}, True) or ""
        out.append((f"{family} by hand", tag, text, admitted))
    return out


def test_sglangs_xgrammar_admits_what_our_grammars_say(engine_build: Path,
                                                       tmp_path: Path) -> None:
    table = cases()
    (tmp_path / "cases.json").write_text(json.dumps(
        [{"tag": tag, "text": text} for _, tag, text, _ in table]))
    subprocess.run([str(engine_build / "python"), str(SCRIPT), str(tmp_path / "cases.json"),
                    str(tmp_path / "out.json")], check=True, timeout=600)
    admitted = json.loads((tmp_path / "out.json").read_text())
    wrong = [(what, text, got) for (what, _, text, want), got
             in zip(table, admitted, strict=True) if got is not want]
    assert not wrong, "\n".join(map(repr, wrong))


@pytest.mark.parametrize(("family", "text", "admitted"),
                         [c for c in BY_HAND if c[0] in XML_FAMILIES and c[2]])
def test_what_the_grammar_admits_by_hand_our_parsers_read(family: str, text: str,
                                                          admitted: bool) -> None:
    calls = get_parser(family).parse(text, {"forecast": FORECAST}).tool_calls
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [
        ("forecast", {"city": "Lyon", "days": 3})]
