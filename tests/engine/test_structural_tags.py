"""Our structural tags (ostinato/tool_grammars.py) in SGLang's own xgrammar (`make
test-engine`; its environment is built by `make sglang-cpu`): every family's grammar
compiles; the sim engine's text under it (workers/sim/structural_tag.py: calls, or the JSON
answer; gpt-oss's after its thinking) and our renderer's calls are admitted; what breaks a
call's parameters (their order, a type, a bound, an undeclared or missing key, too many
blanks) or its family's format is refused; the special-token families' calls are laid out as
xgrammar's own builtin tags for those models lay them out; and gpt-oss's answer and call end
where its stop tokens come, which xgrammar then lets through."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ostinato.harmony import HarmonyFormat
from ostinato.tool_formats import ParsedToolCall, get_parser, render_tool_calls
from ostinato.tool_grammars import MAX_WHITESPACE, answer_or_calls
from tests.workers.test_sim_structural_tag import ANSWER, PARAMETERS, harmony_thinking
from workers.sim.json_instance import instance
from workers.sim.structural_tag import written_for

pytestmark = pytest.mark.engine

SCRIPT = Path(__file__).with_name("xgrammar_accepts.py")
FAMILIES = ("hermes", "qwen25", "llama3", "mistral", "qwen3_coder", "glm45", "deepseekv3",
            "deepseekv31", "kimi_k2")
XML_FAMILIES = ("qwen3_coder", "glm45")
SPECIAL_FAMILIES = ("deepseekv3", "deepseekv31", "kimi_k2")
# xgrammar's builtin tags for the special-token families' models (get_model_structural_tag)
BUILTIN = {"deepseekv3": "deepseek_r1", "deepseekv31": "deepseek_v3_1", "kimi_k2": "kimi"}
# gpt-oss's end-of-sequence tokens (its generation config's ids 200002, 199999, 200012), which
# SGLang hands xgrammar as the stop tokens
GPT_OSS_STOPS = ["<|return|>", "<|endoftext|>", "<|call|>"]
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


LYON = {"city": "Lyon", "days": 3}
# (family, text, admitted) under a tag of FORECAST alone: our renderer's call of arguments
# that keep or break FORECAST, or of another tool, and texts of the family's format by hand
for _family in (*SPECIAL_FAMILIES, "gpt-oss"):
    for _arguments, _admitted in [
            (LYON, True), ({"days": 3, "city": "Lyon"}, False),  # order
            ({"city": "Lyon", "days": "3"}, False), ({"city": "Lyon", "days": 9}, False),
            ({"city": "Lyon"}, False), ({**LYON, "x": 1}, False)]:
        BY_HAND.append((_family, _rendered(_family, [_call("forecast", _arguments)]), _admitted))
    BY_HAND.append((_family, _rendered(_family, [_call("other", LYON)]), False))
    BY_HAND.append((_family, "Sure. " + _rendered(_family, [_call("forecast", LYON)]), False))
_KIMI = _rendered("kimi_k2", [_call("forecast", LYON)])
_DS3 = _rendered("deepseekv3", [_call("forecast", LYON)])
BY_HAND += [
    ("kimi_k2", _KIMI.replace("forecast:0", "forecast:12"), True),  # the conversation's count
    ("kimi_k2", _KIMI.replace("forecast:0", "forecast:"), False),
    ("kimi_k2", _KIMI.replace("functions.forecast", "forecast"), False),
    ("deepseekv3", _DS3.replace("```json\n", ""), False),  # the fence
    ("deepseekv31", _DS3, False),  # V3's layout
    ("deepseekv3", _DS3.replace("```<", "```\n<"), False),
]

# gpt-oss: (text, stop token after it or None, admitted) under a tag of FORECAST alone
_H = "<|start|>assistant"
_ANALYSIS = "<|channel|>analysis<|message|>Weather: call it.<|end|>"
_FINAL = "<|channel|>final<|message|>"
_CALL = "<|channel|>commentary to=functions.forecast <|constrain|>json<|message|>"
_ARGS = json.dumps(LYON)
_ANSWER_JSON = '{"ok": true}'
GPT_OSS: list[tuple[str, str | None, bool]] = [
    (_H + _FINAL + _ANSWER_JSON, "<|return|>", True),
    (_ANALYSIS + _H + _FINAL + _ANSWER_JSON, "<|return|>", True),
    (_ANALYSIS + _H + _FINAL + _ANSWER_JSON, None, True),  # the stop token cut by the engine
    (_ANALYSIS + _H + _CALL + _ARGS, "<|call|>", True),
    (_ANALYSIS + _H + _CALL.replace(" <|constrain|>", "<|constrain|>") + _ARGS, "<|call|>",
     True),  # xgrammar's harmony tag's spelling
    (_H + _CALL + _ARGS, "<|call|>", True),
    (_ANALYSIS + _H + _CALL + _ARGS + "<|call|>", None, False),  # a stop token, not text
    (_ANALYSIS + _H + _CALL + _ARGS[:-1], "<|call|>", False),  # where the grammar cannot end
    (_ANALYSIS + _H + _CALL + _ARGS + _H + _CALL + _ARGS, "<|call|>", False),  # a call ends it
    (_ANALYSIS + _H + _FINAL + _ANSWER_JSON + "<|end|>", None, False),
    (_FINAL + _ANSWER_JSON, "<|return|>", False),  # no role header: see tool_grammars.py
    (_ANALYSIS + _FINAL + _ANSWER_JSON, "<|return|>", False),
    (_ANALYSIS + _H + _ANSWER_JSON, "<|return|>", False),  # outside any message
    (_ANALYSIS + _H + "<|channel|>commentary<|message|>" + _ANSWER_JSON, "<|return|>", False),
    (_ANALYSIS + _H + _FINAL + _ARGS, "<|return|>", False),  # the answer's schema
    (_ANALYSIS + _H + _CALL.replace("commentary", "final") + _ARGS, "<|call|>", False),
    (_ANALYSIS + _H + " to=functions.forecast<|channel|>commentary json<|message|>" + _ARGS,
     "<|call|>", False),  # the recipient in the role's header
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
        if family != "gpt-oss":
            tag = answer_or_calls(ANSWER, family, {"forecast": FORECAST}, True) or ""
            out.append((f"{family} by hand", tag, text, admitted))
    return out


def gpt_oss_cases() -> list[tuple[str, dict[str, Any], bool]]:
    """(what, case for xgrammar_accepts.py, admitted): the sim's text after its thinking and
    alone, our renderer's calls (one, ended by the stop token <|call|>: the grammar ends
    before it), the rows by hand; all with gpt-oss's stop tokens."""
    out = []
    for case, params in PARAMETERS.items():
        tools = {"f": params, "g": PARAMETERS["numbers"]}
        for single in (False, True):
            tag = answer_or_calls(ANSWER, "gpt-oss", tools, single) or ""
            for choice in (0, 1, 2, 7):
                for wants_call in (True, False):
                    text = written_for(tag, choice, wants_call)
                    for whole in (harmony_thinking(text), text):
                        out.append((f"gpt-oss sim {case} {choice} {wants_call}",
                                    {"tag": tag, "text": whole}, True))
            calls = [_call(name, instance({**p, "type": "object"}, 3))
                     for name, p in tools.items()]
            for n, admitted in ((1, True), (2, False)):
                rendered = _rendered("gpt-oss", calls[:n]).removesuffix("<|call|>")
                out.append((f"gpt-oss render {case} {n} calls",
                            {"tag": tag, "text": rendered, "stop": "<|call|>"}, admitted))
    tag = answer_or_calls(ANSWER, "gpt-oss", {"forecast": FORECAST}, True) or ""
    for family, text, admitted in BY_HAND:
        if family == "gpt-oss":  # our renderer's call, ended by its stop token
            out.append(("gpt-oss render by hand", {"tag": tag, "text": text.removesuffix(
                "<|call|>"), "stop": "<|call|>"}, admitted))
    out += [("gpt-oss by hand", {"tag": tag, "text": text, "stop": stop}, admitted)
            for text, stop, admitted in GPT_OSS]
    return [(what, {**case, "stop_tokens": GPT_OSS_STOPS}, admitted)
            for what, case, admitted in out]


def builtin_cases() -> list[tuple[str, dict[str, Any], bool]]:
    """Our renderer's calls (one and two; and the grammar's by hand) under xgrammar's own
    builtin tag for the model, as under ours: the same layout."""
    out = []
    for family, model in BUILTIN.items():
        for case, params in PARAMETERS.items():
            tools = {"f": params, "g": PARAMETERS["numbers"]}
            builtin = {"model": model, "parallel": True, "tools": [
                {"type": "function", "function": {"name": name, "strict": True,
                                                  "parameters": {**p, "type": "object"}}}
                for name, p in tools.items()]}
            calls = [_call(name, instance({**p, "type": "object"}, 3))
                     for name, p in tools.items()]
            out += [(f"{family} builtin {case} {n}", {"builtin": builtin, "text": _rendered(
                family, calls[:n])}, True) for n in (1, 2)]
            tag = answer_or_calls(ANSWER, family, tools, False) or ""
            text = written_for(tag, 0, True)
            out.append((f"{family} builtin sim {case}", {"builtin": builtin, "text": text}, True))
    return out


def test_sglangs_xgrammar_admits_what_our_grammars_say(engine_build: Path,
                                                       tmp_path: Path) -> None:
    table = [(what, {"tag": tag, "text": text}, want) for what, tag, text, want in cases()]
    table += gpt_oss_cases() + builtin_cases()
    (tmp_path / "cases.json").write_text(json.dumps([case for _, case, _ in table]))
    subprocess.run([str(engine_build / "python"), str(SCRIPT), str(tmp_path / "cases.json"),
                    str(tmp_path / "out.json")], check=True, timeout=600)
    admitted = json.loads((tmp_path / "out.json").read_text())
    wrong = [(what, case["text"], got) for (what, case, want), got
             in zip(table, admitted, strict=True) if got is not want]
    assert not wrong, "\n".join(map(repr, wrong))


@pytest.mark.parametrize(("family", "text", "admitted"),
                         [c for c in BY_HAND if c[0] in (*XML_FAMILIES, *SPECIAL_FAMILIES)
                          and c[2]])
def test_what_the_grammar_admits_by_hand_our_parsers_read(family: str, text: str,
                                                          admitted: bool) -> None:
    calls = get_parser(family).parse(text, {"forecast": FORECAST}).tool_calls
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [
        ("forecast", {"city": "Lyon", "days": 3})]


@pytest.mark.parametrize(("text", "stop", "admitted"), [c for c in GPT_OSS if c[2]])
def test_what_gpt_oss_grammar_admits_our_splitter_and_parser_read(
        text: str, stop: str | None, admitted: bool) -> None:
    splitter = HarmonyFormat().splitter()
    thinking, answer = splitter.feed(text)
    more_thinking, more_answer = splitter.finish()
    calls = get_parser("gpt-oss").parse(answer + more_answer, {"forecast": FORECAST})
    assert (thinking + more_thinking) == ("Weather: call it." if _ANALYSIS in text else "")
    if _CALL[:30] in text:
        assert [(c.name, json.loads(c.arguments)) for c in calls.tool_calls] == [
            ("forecast", LYON)]
        # and without the splitter (the thinking left in the text), as SGLang's parser does
        assert get_parser("gpt-oss").parse(text, {"forecast": FORECAST}).tool_calls == \
            calls.tool_calls
    else:
        assert json.loads(calls.content) == {"ok": True} and not calls.tool_calls
