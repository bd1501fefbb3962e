"""Run by SGLang's own Python (.cache/sglang-cpu/python, not the project's): whether its
xgrammar admits each text, whole, under each structural tag, compiled as SGLang's xgrammar
backend compiles `sampling_params.structural_tag` (GrammarCompiler.compile_structural_tag).

    python xgrammar_accepts.py CASES.json OUT.json

CASES.json: [{"tag": structural tag (JSON text), "text": ...}, ...]; a case may instead name
xgrammar's own builtin tag for a model, {"builtin": {"model": "kimi", "tools": [OpenAI tools],
"parallel": true}} (get_model_structural_tag, tool_choice required, no reasoning: the calls
alone), and may give the model's stop tokens, "stop_tokens": [token text, ...] (as SGLang
hands xgrammar the model's end-of-sequence ids: tokens the grammar never matches as text,
let through only where it may end) and "stop": the one the text is followed by.
OUT.json: [true | false | "error: ..." (the tag does not compile), ...]
"""

import json
import sys

from xgrammar import GrammarCompiler, GrammarMatcher, TokenizerInfo, get_model_structural_tag


def _tag(case: dict) -> str:
    if "tag" in case:
        return case["tag"]
    builtin = case["builtin"]
    return get_model_structural_tag(
        builtin["model"], tools=builtin["tools"], tool_choice="required", reasoning="disabled",
        parallel_tool_calls=builtin["parallel"]).model_dump_json()


def main() -> None:
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    compilers: dict = {}
    compiled: dict = {}
    out: list = []
    for case in cases:
        stops = tuple(case.get("stop_tokens", ()))
        if stops not in compilers:  # matching strings, not tokens: a vocabulary of the stops
            compilers[stops] = GrammarCompiler(TokenizerInfo(
                list(stops), stop_token_ids=list(range(len(stops))) or None))
        try:
            tag = _tag(case)
            if (stops, tag) not in compiled:
                compiled[stops, tag] = compilers[stops].compile_structural_tag(tag)
        except (RuntimeError, ValueError) as e:
            out.append(f"error: {e}")
            continue
        stop = case.get("stop")
        matcher = GrammarMatcher(compiled[stops, tag], terminate_without_stop_token=stop is None)
        admitted = matcher.accept_string(case["text"])
        if stop is not None:
            admitted = admitted and matcher.accept_token(stops.index(stop))
        out.append(admitted and matcher.is_terminated())
    with open(sys.argv[2], "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
