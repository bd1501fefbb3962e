"""Validating calls and rendering their prompts: pure functions over protos, no I/O."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from ostinato.v1 import common_pb2

ROLES = ("system", "user", "assistant", "tool")


class InvalidCall(ValueError):
    pass


@dataclass(frozen=True)
class CallLimits:
    max_prompt_chars: int
    max_messages: int
    default_max_new_tokens: int
    max_new_tokens_limit: int


def render_prompt(call: common_pb2.CallSpec) -> str:
    """A ChatML rendering of the messages (or the raw prompt), ending with the assistant turn.

    With a real SGLang model the engine's own chat template should be used; the stand-in
    keeps the prefix of a growing conversation stable, which is what prefix caching needs.
    """
    if call.prompt:
        return call.prompt
    parts = [f"<|im_start|>{m.role}\n{m.content}<|im_end|>\n" for m in call.messages]
    return "".join(parts) + "<|im_start|>assistant\n"


def normalize_call(call: common_pb2.CallSpec, limits: CallLimits) -> common_pb2.CallSpec:
    """Checks a call and returns a copy with defaults filled in; raises InvalidCall."""
    if not call.messages and not call.prompt:
        raise InvalidCall("a call needs messages or a prompt")
    if call.messages and call.prompt:
        raise InvalidCall("give either messages or a prompt, not both")
    if len(call.messages) > limits.max_messages:
        raise InvalidCall(f"too many messages: {len(call.messages)} > {limits.max_messages}")
    for i, m in enumerate(call.messages):
        if m.role not in ROLES:
            raise InvalidCall(f"messages[{i}].role must be one of {', '.join(ROLES)}, got {m.role!r}")
    if call.messages and not any(m.content for m in call.messages):
        raise InvalidCall("every message is empty")
    size = len(call.prompt) + sum(len(m.content) for m in call.messages)
    if size > limits.max_prompt_chars:
        raise InvalidCall(f"prompt too large: {size} characters > {limits.max_prompt_chars}")
    if call.call_id and ("/" in call.call_id or len(call.call_id) > 128):
        raise InvalidCall("call_id must be at most 128 characters and contain no '/'")
    if call.call_id in call.parent_call_ids:
        raise InvalidCall("a call cannot be its own parent")
    sp = call.sampling
    if sp.HasField("max_new_tokens") and sp.max_new_tokens > limits.max_new_tokens_limit:
        raise InvalidCall(
            f"sampling.max_new_tokens {sp.max_new_tokens} > limit {limits.max_new_tokens_limit}")
    if sp.HasField("temperature") and not 0.0 <= sp.temperature <= 2.0:
        raise InvalidCall("sampling.temperature must be in [0, 2]")
    if sp.HasField("top_p") and not 0.0 < sp.top_p <= 1.0:
        raise InvalidCall("sampling.top_p must be in (0, 1]")
    if sp.HasField("n") and sp.n != 1:
        raise InvalidCall("sampling.n must be 1 for program calls")
    out = common_pb2.CallSpec()
    out.CopyFrom(call)
    if not out.call_id:
        out.call_id = uuid.uuid4().hex[:16]
    if not out.thread_id:
        out.thread_id = "main"
    if not out.sampling.HasField("max_new_tokens"):
        out.sampling.max_new_tokens = limits.default_max_new_tokens
    return out
