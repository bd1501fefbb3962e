"""A call fitted to the served model's context window, once its prompt is tokenized. Pure.

As OpenAI answers and SGLang's server checks (tokenizer_manager: the input must be shorter
than the context length, and input plus max_new_tokens within it; its scheduler: the input
within max_req_input_len, engine review 2026-12-05 F2): a prompt that does not fit, or a
call asking for more output than the window leaves, is refused with OpenAI's
`context_length_exceeded`, before it is queued anywhere; so is one whose prompt has no
token (SGLang's engine takes none). A call that names no max tokens gets the gateway's
default (by default its max_new_tokens_limit), cut to what the window leaves (SGLang's
server, given none, generates to the end of the window; OpenAI's max tokens are an optional
bound).
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.calls import CONTEXT_LENGTH_EXCEEDED, InvalidCall
from ostinato.v1 import common_pb2


@dataclass(frozen=True)
class ContextWindow:
    tokens: int  # the served model's context length (prompt and output); 0: not known here
    default_output: int  # max_new_tokens of a call that names none
    # the longest prompt the engine takes (SGLang's max_req_input_len: under the context
    # length by a few tokens, and by more where its KV pool is smaller); 0: `tokens` less one
    max_input: int = 0


ANSWER_SHARE = 4  # truncation keeps 1/this of the window for an answer of no max tokens


def answer_room(window: ContextWindow) -> int:
    """The output tokens that Responses truncation "auto" leaves room for when the call names
    no max tokens: the default, at most a quarter of the window (the default is the whole
    window's by default: room for it would leave out every turn but the last)."""
    if not window.tokens:
        return window.default_output
    return max(1, min(window.default_output, window.tokens // ANSWER_SHARE))


class ContextExceeded(InvalidCall):
    error_code = CONTEXT_LENGTH_EXCEEDED


def fit(call: common_pb2.CallSpec, prompt_tokens: int,
        window: ContextWindow) -> common_pb2.CallSpec:
    """`call` with its max_new_tokens set (a copy, when it changes); raises ContextExceeded."""
    sp = call.sampling
    given = sp.HasField("max_new_tokens")
    room = window.tokens - prompt_tokens if window.tokens else None
    said = "prompt" if call.prompt else "messages"  # /v1/completions: a raw prompt
    if prompt_tokens == 0:
        # empty messages are taken (as OpenAI and SGLang take them) where the chat template
        # writes something for them; a prompt of no tokens gives the engine nothing to go on
        raise InvalidCall(f"the {said} resulted in no tokens: there is nothing for the model "
                          "to continue", said)
    if window.max_input and prompt_tokens > window.max_input and (room is None or room > 0):
        raise ContextExceeded(
            f"This model's maximum input length is {window.max_input} tokens (its context "
            f"length: {window.tokens or 'not known here'}). However, your {said} resulted in "
            f"{prompt_tokens} tokens. Please reduce the length of the {said}.", said)
    if room is not None and room <= 0:
        raise ContextExceeded(
            f"This model's maximum context length is {window.tokens} tokens. However, your "
            f"{said} resulted in {prompt_tokens} tokens. Please reduce the length of the "
            f"{said}.", said)
    if given and room is not None and sp.max_new_tokens > room:
        raise ContextExceeded(
            f"This model's maximum context length is {window.tokens} tokens. However, you "
            f"requested {prompt_tokens + sp.max_new_tokens} tokens ({prompt_tokens} in the "
            f"{said}, {sp.max_new_tokens} in the completion). Please reduce the length of "
            f"the {said} or completion.", "max_tokens")
    if given:
        return call
    out = common_pb2.CallSpec()
    out.CopyFrom(call)
    out.sampling.max_new_tokens = window.default_output if room is None else \
        min(window.default_output, room)
    if out.sampling.min_new_tokens > out.sampling.max_new_tokens:
        raise ContextExceeded(
            f"This model's maximum context length is {window.tokens} tokens; your {said} "
            f"resulted in {prompt_tokens} tokens, which leaves {room} for the completion, fewer "
            f"than its min tokens ({out.sampling.min_new_tokens}).", "min_tokens")
    return out
