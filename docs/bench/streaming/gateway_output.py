"""The gateway's cost of streaming one long answer: ToolOutput fed a FAMILY answer of N
characters in 4-character pieces (content only, no call; with a thinking model, N of
thinking then N of answer). CPU time of the event loop's work, printed in ms.

    python docs/bench/streaming/gateway_output.py hermes 320000
    python docs/bench/streaming/gateway_output.py qwen3 320000   # (a reasoning format)
"""

from __future__ import annotations

import sys
import time

from gateway.tool_output import ToolOutput
from ostinato.reasoning_formats import REASONING_FORMATS
from ostinato.tool_formats import get_parser

WORDS = "The quick brown fox jumps over the lazy dog, then considers x<y and more. "


def main(fmt: str, n: int) -> None:
    body = (WORDS * (n // len(WORDS) + 1))[:n]
    reasoning = REASONING_FORMATS.get(fmt)
    if reasoning is None:
        text, out = body, ToolOutput(get_parser(fmt), {})
    elif fmt == "gpt-oss":
        text = ("<|channel|>analysis<|message|>" + body
                + "<|end|><|start|>assistant<|channel|>final<|message|>" + body)
        out = ToolOutput(get_parser("gpt-oss"), {}, reasoning=reasoning)
    else:
        text = "<think>" + body + "</think>\n\n" + body
        out = ToolOutput(get_parser("hermes"), {}, reasoning=reasoning)
    start = time.process_time()
    for i in range(0, len(text), 4):
        out.feed(text[i:i + 4])
    out.finish()
    print(f"{fmt} {n} chars: {(time.process_time() - start) * 1e3:.1f} ms")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
