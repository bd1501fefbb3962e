"""A Worker GenerateRequest as SGLang's /generate request: its sampling params in SGLang's
names (unset fields keep SGLang's defaults), the prompt as text or token ids, priority,
cache salt, logprobs asked for, and require_reasoning (the model thinks before the grammar)."""

from __future__ import annotations

from typing import Any

from ostinato.seeds import engine_seed
from ostinato.v1 import common_pb2, worker_pb2
from workers.sglang_client import EngineRequest


def engine_request(request: worker_pb2.GenerateRequest, rid: str) -> EngineRequest:
    """The engine request for a call, under SGLang request id `rid`."""
    return EngineRequest(
        rid=rid, text=request.prompt, input_ids=list(request.input_ids) or None,
        sampling_params=sampling_dict(request.sampling, request.json_schema,
                                      request.keep_special_tokens, request.structural_tag),
        priority=request.priority, cache_salt=request.cache_salt or None,
        top_logprobs_num=request.top_logprobs_num if request.return_logprob else None,
        # only under a grammar, the one thing it gates (its other uses in SGLang 0.5.23, a
        # reasoning_tokens count and strict thinking, are not ours): an SGLang whose /generate
        # does not know the field refuses the requests that carry it
        require_reasoning=request.require_reasoning and bool(
            request.json_schema or request.structural_tag),
    )


def sampling_dict(sp: common_pb2.SamplingParams, json_schema: str = "",
                  keep_special_tokens: bool = False, structural_tag: str = "") -> dict[str, Any]:
    """Proto sampling params -> SGLang sampling_params; unset fields keep SGLang's defaults."""
    out: dict[str, Any] = {}
    for name in ("max_new_tokens", "temperature", "top_p", "top_k", "n", "presence_penalty",
                 "frequency_penalty", "min_p", "repetition_penalty", "min_new_tokens"):
        if sp.HasField(name):
            out[name] = getattr(sp, name)
    if json_schema:
        out["json_schema"] = json_schema
    if structural_tag:
        out["structural_tag"] = structural_tag
    if sp.HasField("seed"):
        out["sampling_seed"] = engine_seed(sp.seed)  # SGLang's is an int64
    if sp.logit_bias:  # SGLang's keys are token ids as strings
        out["logit_bias"] = {str(t): sp.logit_bias[t] for t in sorted(sp.logit_bias)}
    if sp.stop:
        out["stop"] = list(sp.stop)
    if sp.ignore_eos:
        out["ignore_eos"] = True
    if keep_special_tokens:
        out["skip_special_tokens"] = False
    return out
