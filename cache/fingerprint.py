"""What a cached answer is keyed by: pure functions over a normalized CallSpec.

Exact: everything that determines the answer (tenant, model, the messages or prompt with
their tool calls, tools, tool choice, response format, logprobs, the chat template's
variables, the reasoning effort and whether thinking stays in the text, every sampling
parameter set). Only deterministic calls are cached exactly:
temperature 0 (or top_k 1); SGLang's default temperature is 1.0, so unset is not.

Semantic: the final user turn is embedded; everything else (tenant, model, system prompt,
earlier turns, sampling) goes into a context digest that must match exactly.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from google.protobuf.json_format import MessageToDict

from ostinato.v1 import common_pb2


def deterministic(call: common_pb2.CallSpec) -> bool:
    sp = call.sampling
    return (sp.HasField("temperature") and sp.temperature == 0.0) or (
        sp.HasField("top_k") and sp.top_k == 1)


def _digest(parts: dict[str, object]) -> str:
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def _answer_shaping(call: common_pb2.CallSpec) -> dict[str, object]:
    """Everything but the messages, ids and hints that changes what the model answers."""
    shaping = common_pb2.CallSpec(model=call.model, sampling=call.sampling, tools=call.tools,
                                  tool_choice=call.tool_choice,
                                  response_format=call.response_format,
                                  logprobs=call.logprobs, top_logprobs=call.top_logprobs,
                                  chat_template_kwargs=call.chat_template_kwargs,
                                  reasoning_effort=call.reasoning_effort,
                                  reasoning_in_text=call.reasoning_in_text)
    if call.HasField("parallel_tool_calls"):
        shaping.parallel_tool_calls = call.parallel_tool_calls
    return MessageToDict(shaping, preserving_proto_field_name=True)


def _message(m: common_pb2.Message) -> list[object]:
    return [m.role, m.content, m.name, m.tool_call_id,
            [[c.id, c.name, c.arguments] for c in m.tool_calls]]


def exact_digest(tenant: str, call: common_pb2.CallSpec) -> str:
    return _digest({
        "v": 2, "tenant": tenant, "prompt": call.prompt,
        "messages": [_message(m) for m in call.messages], "shaping": _answer_shaping(call),
    })


@dataclass(frozen=True)
class SemanticKey:
    context: str  # digest of everything that must match exactly
    text: str  # the final user turn: what is embedded and guarded


def semantic_key(tenant: str, call: common_pb2.CallSpec) -> SemanticKey | None:
    """None when the call has no final user turn to compare (then only exact applies)."""
    if call.prompt:
        earlier: list[list[object]] = []
        text = call.prompt
    elif call.messages and call.messages[-1].role == "user":
        earlier = [_message(m) for m in call.messages[:-1]]
        text = call.messages[-1].content
    else:
        return None
    if not text.strip():
        return None
    context = _digest({"v": 2, "tenant": tenant, "earlier": earlier,
                       "raw_prompt": bool(call.prompt), "shaping": _answer_shaping(call)})
    return SemanticKey(context, text)
