"""Run by SGLang's own Python (.cache/sglang-cpu/python, not the project's): whether its
xgrammar admits each text, whole, under each structural tag, compiled as SGLang's xgrammar
backend compiles `sampling_params.structural_tag` (GrammarCompiler.compile_structural_tag).

    python xgrammar_accepts.py CASES.json OUT.json

CASES.json: [{"tag": structural tag (JSON text), "text": ...}, ...]
OUT.json: [true | false | "error: ..." (the tag does not compile), ...]
"""

import json
import sys

from xgrammar import GrammarCompiler, GrammarMatcher, TokenizerInfo


def main() -> None:
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    compiler = GrammarCompiler(TokenizerInfo([]))  # matching strings, not tokens
    compiled: dict = {}
    out: list = []
    for case in cases:
        tag = case["tag"]
        try:
            if tag not in compiled:
                compiled[tag] = compiler.compile_structural_tag(tag)
        except (RuntimeError, ValueError) as e:
            out.append(f"error: {e}")
            continue
        matcher = GrammarMatcher(compiled[tag], terminate_without_stop_token=True)
        out.append(matcher.accept_string(case["text"]) and matcher.is_terminated())
    with open(sys.argv[2], "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
