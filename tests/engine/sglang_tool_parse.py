"""Run by SGLang's own Python (.cache/sglang-cpu/python, not the project's): parses each case
with SGLang's function-call parser, as its server does for a whole (non-streamed) answer.

    python sglang_tool_parse.py CASES.json OUT.json

CASES.json: [{"parser": ..., "text": ..., "tools": [OpenAI tool, ...]}, ...]
OUT.json: [{"reasoning": ..., "content": normal text, "calls": [[name, arguments], ...]}, ...]

gpt-oss's output goes through its reasoning parser first and the tool parser reads what that
leaves (SGLang's server does so: its harmony carries both).
"""

import json
import logging
import sys

from sglang.srt.entrypoints.openai.protocol import Tool
from sglang.srt.function_call.function_call_parser import FunctionCallParser
from sglang.srt.parser.reasoning_parser import ReasoningParser

logging.disable(logging.WARNING)  # the detectors log every call they drop


def parse(case: dict) -> dict:
    tools = [Tool(**t) for t in case["tools"]]
    text, reasoning = case["text"], ""
    if case["parser"] == "gpt-oss":
        reasoning, text = ReasoningParser(
            "gpt-oss", stream_reasoning=False, force_reasoning=True,
            tool_call_parser_active=True).parse_non_stream(text)
    parser = FunctionCallParser(tools, case["parser"])
    if not parser.has_tool_call(text):
        return {"reasoning": reasoning or "", "content": text, "calls": []}
    content, calls = parser.parse_non_stream(text)
    return {"reasoning": reasoning or "", "content": content,
            "calls": [[c.name, c.parameters] for c in calls]}


def main() -> None:
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    with open(sys.argv[2], "w") as f:
        json.dump([parse(c) for c in cases], f)


if __name__ == "__main__":
    main()
