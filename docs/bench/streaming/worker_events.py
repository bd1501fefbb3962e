"""The worker's cost of reading one long streamed answer from SGLang: N characters in
4-character events, as SGLang's default writes them (each event the whole text so far) or
with --incremental-streaming-output (each event its new text), decoded and turned into
deltas as workers/engine_output.py does. CPU time, printed in ms.

    python docs/bench/streaming/worker_events.py 80000 cumulative,incremental
"""

from __future__ import annotations

import json
import sys
import time

from workers.engine_output import StreamPieces, parse_output
from workers.streamed_text import StreamedText

WORDS = "The quick brown fox jumps over the lazy dog, then considers x<y and more. "


def main(n: int, modes: list[str]) -> None:
    text = (WORDS * (n // len(WORDS) + 1))[:n]
    for mode in modes:
        events = [json.dumps({
            "text": text[:i] if mode == "cumulative" else text[i - 4:i],
            "meta_info": {"prompt_tokens": 10, "completion_tokens": i // 4,
                          "finish_reason": None if i < n else {"type": "stop", "matched": 2}},
        }).encode() for i in range(4, n + 1, 4)]
        streamed = StreamedText(["</stop>"])
        pieces = StreamPieces() if mode == "incremental" else None
        start = time.process_time()
        for event in events:
            out = parse_output(json.loads(event), streamed, pieces=pieces)
        assert out.text == text
        print(f"{mode} {n} chars, {len(events)} events: "
              f"{(time.process_time() - start) * 1e3:.0f} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2].split(","))
