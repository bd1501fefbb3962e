"""A /generate request body -> the sim engine's requests, checked as SGLang checks them
(its GenerateReqInput and SamplingParams.verify: the same 400s, in its words where the mesh
can meet them), and what the simulated model will answer (workers/sim/behavior.py)."""

from __future__ import annotations

import uuid
from typing import Any

from workers.sim.behavior import scripted_answer, thinking
from workers.sim.engine import SimRequest
from workers.sim.json_instance import UnsupportedSchema
from workers.sim.reasoning_gate import CONSTRAINTS, gated, require_reasoning
from workers.sim.tokenizer import detokenize, tokenize

DEFAULT_MAX_NEW_TOKENS = 128  # SGLang's SamplingParams default

class BadRequest(ValueError):
    pass


_UNSUPPORTED_CONSTRAINTS = ("regex", "ebnf")


def _penalty(sp: dict[str, Any], name: str) -> None:
    value = sp.get(name, 0.0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not -2.0 <= value <= 2.0:
        raise BadRequest(f"sampling_params.{name} must be a number in [-2, 2]")


SIM_VOCAB_SIZE = 1 << 64  # the sim tokenizer's ids are 8-byte chunks (workers/sim/tokenizer.py)


def _sampling_ranges(sp: dict[str, Any], max_new: int) -> int:
    """top_k, min_p, repetition_penalty and min_new_tokens checked in SGLang's words (its
    SamplingParams.verify); returns min_new_tokens, which the SIMULATED text follows (no EOS
    before it) as it does not follow the other three."""
    values = {"top_k": -1, "min_p": 0.0, "repetition_penalty": 1.0, "min_new_tokens": 0}
    for name, default in values.items():
        value = sp.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or (
                isinstance(default, int) and not float(value).is_integer()):
            raise BadRequest(f"sampling_params.{name} must be a number")
        values[name] = value
    top_k, min_p, penalty, least = values.values()
    if top_k != -1 and top_k < 1:
        raise BadRequest(f"top_k must be -1 (disable) or at least 1, got {top_k}.")
    if not 0.0 <= min_p <= 1.0:
        raise BadRequest(f"min_p must be in [0, 1], got {min_p}.")
    if not 0.0 < penalty <= 2.0:
        raise BadRequest("repetition_penalty must be in (0, 2] (1.0 = no penalty), got "
                         f"{penalty}.")
    if not 0 <= least <= max_new:
        raise BadRequest(f"min_new_tokens must be in [0, max_new_tokens({max_new})], got "
                         f"{least}.")
    return int(least)


def _logit_bias(sp: dict[str, Any]) -> None:
    """Checked as SGLang checks it (keys are token ids in the vocabulary). The SIMULATED text
    does not follow it, as it does not follow temperature or top_p."""
    bias = sp.get("logit_bias")
    if bias is None:
        return
    if not isinstance(bias, dict):
        raise BadRequest("sampling_params.logit_bias must be an object")
    for token_id, value in bias.items():
        try:
            tid = int(token_id)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        if not 0 <= tid < SIM_VOCAB_SIZE:  # SGLang's own check, word for word
            raise BadRequest(f"logit_bias must has keys in [0, {SIM_VOCAB_SIZE - 1}], got "
                             f"{token_id}.")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BadRequest(f"sampling_params.logit_bias[{token_id}] must be a number")


def _script(prompt: str, sp: dict[str, Any], tool_format: str, seed: int) -> str | None:
    """What the simulated model answers (workers/sim/behavior.py); constraints it cannot
    honour are refused, never ignored."""
    for name in _UNSUPPORTED_CONSTRAINTS:
        if sp.get(name) is not None:
            raise BadRequest(f"sampling_params.{name} is not supported by the sim engine "
                             "(json_schema and structural_tag are)")
    given = [n for n in ("json_schema", "structural_tag") if sp.get(n) is not None]
    if len(given) > 1:  # SGLang's words (SamplingParams.verify)
        raise BadRequest("Only one of json_schema, regex, ebnf, or structural_tag can be set.")
    for name in given:
        if not isinstance(sp[name], str):
            raise BadRequest(f"sampling_params.{name} must be a JSON string")
    name = given[0] if given else "json_schema"
    try:
        return scripted_answer(prompt, json_schema=sp.get("json_schema"),
                               tool_format=tool_format, seed=seed,
                               structural_tag=sp.get("structural_tag"))
    except UnsupportedSchema as exc:
        raise BadRequest(f"sampling_params.{name}: {exc}") from exc
    except ValueError as exc:
        raise BadRequest(f"sampling_params.{name} is not valid JSON: {exc}") from exc


def parse_generate(body: Any, tool_format: str = "hermes",
                   reasoning_format: str = "") -> list[SimRequest]:
    """Validates a /generate body; one SimRequest per sample (n); BadRequest names the field.

    The simulated model reads its prompt (from `text`, or `input_ids` decoded as a real
    engine's model sees them) to decide on tool calls, answering in `tool_format`; a
    thinking model (`reasoning_format`) thinks before answering a chat turn, and under a
    constraint only where the request's `require_reasoning` holds the grammar back (the
    sim engine is an SGLang launched with --reasoning-parser: workers/sim/reasoning_gate.py)."""
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    text, input_ids = body.get("text"), body.get("input_ids")
    if input_ids is not None and not isinstance(input_ids, list):
        raise BadRequest("input_ids must be a list of integers")
    if isinstance(text, list) or (input_ids and isinstance(input_ids[0], list)):
        raise BadRequest("batched requests are not supported by the sim engine")
    if text is None and input_ids is None:
        raise BadRequest("either text or input_ids must be provided")
    if text is not None and not isinstance(text, str):
        raise BadRequest("text must be a string")
    if input_ids is not None and not all(type(t) is int for t in input_ids):  # no bools
        raise BadRequest("input_ids must be a list of integers")
    sp = body.get("sampling_params") or {}
    if not isinstance(sp, dict):
        raise BadRequest("sampling_params must be an object")
    max_new = sp.get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS)
    if not isinstance(max_new, int) or max_new < 0:
        raise BadRequest("sampling_params.max_new_tokens must be a non-negative integer")
    n = sp.get("n", 1)
    if not isinstance(n, int) or not 1 <= n <= 64:
        raise BadRequest("sampling_params.n must be an integer from 1 to 64")
    stop = sp.get("stop") or ()
    stop = (stop,) if isinstance(stop, str) else tuple(stop)
    priority = body.get("priority")
    if priority is not None and not isinstance(priority, int):
        raise BadRequest("priority must be an integer")
    for name in ("presence_penalty", "frequency_penalty"):
        _penalty(sp, name)
    _logit_bias(sp)
    min_new = _sampling_ranges(sp, max_new)
    top = body.get("top_logprobs_num", 0)
    if not isinstance(top, int) or isinstance(top, bool) or not 0 <= top <= 20:
        raise BadRequest("top_logprobs_num must be an integer from 0 to 20")
    seed = sp.get("sampling_seed") or 0
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise BadRequest("sampling_params.sampling_seed must be an integer")
    if not -(1 << 63) <= seed < 1 << 63:  # SGLang's own check, word for word
        raise BadRequest(f"sampling_seed must be in [-2**63, 2**63 - 1], got {seed}.")
    try:
        required = require_reasoning(body)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    rid = str(body.get("rid") or uuid.uuid4().hex)
    prompt = list(input_ids) if input_ids is not None else tokenize(text or "")
    prompt_text = text if text is not None else detokenize(prompt)
    # greedy decoding (temperature 0, or top_k 1) picks the same tokens whatever the seed:
    # so does the sim's text (API review 2026-12-06: n greedy choices differed)
    greedy = sp.get("temperature") == 0 or sp.get("top_k") == 1
    seeds = [0 if greedy else int(seed) + i for i in range(n)]
    outputs = [_output(prompt_text, sp, tool_format, reasoning_format, s, required)
               for s in seeds]
    return [
        SimRequest(
            rid=rid if n == 1 else f"{rid}-{i}", prompt_ids=prompt, max_new_tokens=max_new,
            stop=stop, no_stop_trim=bool(sp.get("no_stop_trim", False)),
            ignore_eos=bool(sp.get("ignore_eos", False)), seed=seeds[i],
            min_new_tokens=min_new,
            priority=priority or 0, cache_salt=str(body.get("cache_salt") or ""),
            script=script, preamble=preamble,
        )
        for i, (preamble, script) in enumerate(outputs)
    ]


def _output(prompt: str, sp: dict[str, Any], tool_format: str, reasoning_format: str,
            seed: int, required: bool) -> tuple[str, str | None]:
    """(the thinking, the answer's script) of one sample: the constraint checked and
    answered (_script), the thinking written around it as SGLang's reasoning gate lets it
    (workers/sim/reasoning_gate.py)."""
    script = _script(prompt, sp, tool_format, seed)
    free = script
    if any(sp.get(name) is not None for name in CONSTRAINTS):
        free = _script(prompt, {k: v for k, v in sp.items() if k not in CONSTRAINTS},
                       tool_format, seed)
    return gated(sp, reasoning_format, thinking(prompt, reasoning_format, seed, script),
                 script, free, required)
