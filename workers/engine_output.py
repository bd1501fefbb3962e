"""What SGLang's /generate answers, read: a streamed event or a whole answer as an
EngineOutput (its delta past what was sent, its finish, token counts and logprobs), from
either kind of stream SGLang writes (the whole text so far in each event, its default; or
each event's new text only, --incremental-streaming-output). Field names: the client's
docstring (workers/sglang_client.py). Pure: no I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from workers.streamed_text import StreamedText


@dataclass(frozen=True)
class EngineOutput:
    delta: str
    # the answer's whole text so far (an incremental stream's: with its last output only;
    # "" before)
    text: str
    finish_reason: str | None  # "stop" | "length" | "abort" once finished
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    e2e_latency: float | None
    simulated: bool
    # meta_info output_token_logprobs / output_top_logprobs when asked for, the answer's so
    # far (an incremental stream's: with its last output only): [logprob, token_id, text]
    token_logprobs: list[Any] = field(default_factory=list)
    top_logprobs: list[Any] = field(default_factory=list)
    # Another output of the same stream had already arrived when this one was handed on:
    # a consumer may hold this one's delta and send both together (fewer messages).
    more: bool = False
    # it finished at one of the request's stop strings (not at an end-of-sequence token)
    stop_string: bool = False

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None


def sse_payloads(lines: list[bytes]) -> tuple[list[dict[str, Any]], bool]:
    """The JSON payloads of complete SSE lines (`data: {...}`), and whether `data: [DONE]`
    was among them (nothing after it counts)."""
    payloads: list[dict[str, Any]] = []
    for raw in lines:
        line = raw.strip()
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            return payloads, True
        payloads.append(json.loads(data))
    return payloads, False


def parse_output(payload: dict[str, Any], streamed: StreamedText | None = None,
                 more: bool = False, pieces: StreamPieces | None = None) -> EngineOutput:
    """One /generate event or answer; `streamed`: what the stream has sent so far (its
    delta is the text past it; without, the whole text); `pieces`: the stream's events
    carry only their new text and logprobs (SGLang's --incremental-streaming-output)."""
    meta = payload.get("meta_info") or {}
    text = payload.get("text") or ""
    reason = meta.get("finish_reason")
    matched = None  # the stop string the engine ended at
    if isinstance(reason, dict):
        matched = reason.get("matched") if isinstance(reason.get("matched"), str) else None
        reason = reason.get("type")
    token_logprobs = list(meta.get("output_token_logprobs") or [])
    top_logprobs = list(meta.get("output_top_logprobs") or [])
    if streamed is None:
        delta = text
    elif pieces is None:
        delta = streamed.delta(text, reason is not None, matched)
        text = streamed.sent if reason is not None else text  # (the answer as sent)
    else:  # the whole text and logprobs, with its last output (gathered, not copied per event)
        delta = streamed.piece(text, reason is not None, matched)
        pieces.text.append(delta)  # (the answer as sent: a stop string's start left out)
        pieces.token_logprobs.extend(token_logprobs)
        pieces.top_logprobs.extend(top_logprobs)
        text, token_logprobs, top_logprobs = (
            "".join(pieces.text), pieces.token_logprobs, pieces.top_logprobs) \
            if reason is not None else ("", [], [])
    return EngineOutput(
        delta=delta, text=text, finish_reason=reason,
        prompt_tokens=int(meta.get("prompt_tokens") or 0),
        completion_tokens=int(meta.get("completion_tokens") or 0),
        cached_tokens=int(meta.get("cached_tokens") or 0),
        e2e_latency=meta.get("e2e_latency"),
        simulated=bool(meta.get("simulated", False)),
        token_logprobs=token_logprobs, top_logprobs=top_logprobs,
        more=more, stop_string=matched is not None,
    )


@dataclass
class StreamPieces:
    """What an incremental stream's events add up to (their text and logprobs)."""

    text: list[str] = field(default_factory=list)
    token_logprobs: list[Any] = field(default_factory=list)
    top_logprobs: list[Any] = field(default_factory=list)
