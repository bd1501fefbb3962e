"""OpenAI's sampling fields, and SGLang's extensions to them, -> SamplingParams. Pure.

`max_tokens` / `max_completion_tokens`, `temperature`, `top_p`, `seed`, `presence_penalty`,
`frequency_penalty`, `logit_bias`, `stop`; SGLang's `top_k`, `min_p`, `repetition_penalty`,
`min_tokens`, `ignore_eos`. Each checked in its range, the field named in the 400.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from gateway.calls import FLOAT32_TINY, LOGIT_BIAS_LIMIT, LOGIT_BIAS_MAX_ENTRIES
from gateway.openai_fields import BadRequest, number
from ostinato.seeds import proto_seed
from ostinato.v1 import common_pb2

# Sampling fields SGLang's (and vLLM's) OpenAI servers take beyond OpenAI's, which clients
# send as `extra_body` (Qwen's recommended top_k, benchmarks' ignore_eos).
SGLANG_EXTENSIONS = ("top_k", "min_p", "repetition_penalty", "min_tokens", "ignore_eos")
UINT32_MAX = 2**32 - 1  # the proto field's range
_INT32_MAX = 2**31 - 1
# A logit_bias key: a decimal token id below 10**19, matched as the OpenAPI document's pattern
# is (a trailing newline passes `$`, and int() takes it)
_TOKEN_ID = re.compile(r"^(0|[1-9][0-9]{0,18})$")


def sampling(body: Mapping[str, Any]) -> common_pb2.SamplingParams:
    sp = common_pb2.SamplingParams()
    for name in ("max_tokens", "max_completion_tokens"):  # the latter wins
        max_tokens = number(body, name, int)
        if max_tokens is not None:
            if not 1 <= max_tokens <= UINT32_MAX:
                raise BadRequest(f"{name} must be at least 1 (and at most the gateway's "
                                 "limit)", name)
            sp.max_new_tokens = max_tokens
    _ranged(body, sp, _OPENAI_RANGES)  # (top_p 0: gateway/calls.py normalize_call)
    seed = number(body, "seed", int)
    if seed is not None:
        try:
            sp.seed = proto_seed(seed)
        except ValueError as exc:
            raise BadRequest(str(exc), "seed") from None
    _logit_bias(body, sp)
    _ranged(body, sp, _SGLANG_RANGES)  # min_tokens against max_tokens is calls.py's
    _ignore_eos(body, sp)
    stop = body.get("stop")
    if isinstance(stop, str):
        sp.stop.append(stop)
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop) and len(stop) <= 4:
        sp.stop.extend(stop)
    elif stop is not None:
        raise BadRequest("stop must be a string or an array of at most 4 strings", "stop")
    return sp


# A numeric sampling field: (request field, SamplingParams field, int or float, whether a
# value is in range, the range in words). Above 0 stays above 0 in a float32 field.
_Range = tuple[str, str, type, Callable[[float], bool], str]
_OPENAI_RANGES: tuple[_Range, ...] = (
    ("temperature", "temperature", float, lambda v: 0.0 <= v <= 2.0, "in [0, 2]"),
    ("top_p", "top_p", float, lambda v: 0.0 <= v <= 1.0, "in [0, 1]"),
    ("presence_penalty", "presence_penalty", float, lambda v: -2.0 <= v <= 2.0, "in [-2, 2]"),
    ("frequency_penalty", "frequency_penalty", float, lambda v: -2.0 <= v <= 2.0, "in [-2, 2]"),
)
_SGLANG_RANGES: tuple[_Range, ...] = (  # SGLang's, as its SamplingParams.verify has them
    ("top_k", "top_k", int, lambda v: v == -1 or 1 <= v <= _INT32_MAX,
     "-1 (the whole vocabulary) or at least 1"),
    ("min_p", "min_p", float, lambda v: 0.0 <= v <= 1.0, "in [0, 1]"),
    ("repetition_penalty", "repetition_penalty", float, lambda v: 0.0 < v <= 2.0,
     "in (0, 2] (1: none)"),
    ("min_tokens", "min_new_tokens", int, lambda v: 0 <= v <= UINT32_MAX,
     "at least 0 (and at most max_tokens)"),
)


def _ranged(body: Mapping[str, Any], sp: common_pb2.SamplingParams,
            ranges: tuple[_Range, ...]) -> None:
    for name, field, kind, within, words in ranges:
        value = number(body, name, kind)
        if value is None:
            continue
        if not within(value):
            raise BadRequest(f"{name} must be {words}", name)
        setattr(sp, field, max(value, FLOAT32_TINY) if value > 0 and kind is float else value)


def _ignore_eos(body: Mapping[str, Any], sp: common_pb2.SamplingParams) -> None:
    ignore_eos = body.get("ignore_eos")
    if ignore_eos is not None:
        if not isinstance(ignore_eos, bool):
            raise BadRequest("ignore_eos must be true or false", "ignore_eos")
        sp.ignore_eos = ignore_eos


def _logit_bias(body: Mapping[str, Any], sp: common_pb2.SamplingParams) -> None:
    """OpenAI's `logit_bias`: token ids (decimal strings, the engine's tokenizer) to a bias in
    [-100, 100]. Whether an id is in the model's vocabulary is the engine's to say (a 400)."""
    bias = body.get("logit_bias")
    if bias is None:
        return
    if not isinstance(bias, dict):
        raise BadRequest("logit_bias must be an object mapping token ids to biases", "logit_bias")
    if len(bias) > LOGIT_BIAS_MAX_ENTRIES:
        raise BadRequest(f"logit_bias biases {len(bias)} token ids, more than "
                         f"{LOGIT_BIAS_MAX_ENTRIES}", "logit_bias")
    for key, value in bias.items():
        if not _TOKEN_ID.match(key):
            raise BadRequest(f"logit_bias key {key[:40]!r} is not a token id (a decimal integer "
                             "below 10**19)", "logit_bias")
        if isinstance(value, bool) or not isinstance(value, int | float) or not (
                -LOGIT_BIAS_LIMIT <= value <= LOGIT_BIAS_LIMIT):
            raise BadRequest(f"logit_bias[{key}] must be a number in [-100, 100]", "logit_bias")
        sp.logit_bias[int(key)] = value
