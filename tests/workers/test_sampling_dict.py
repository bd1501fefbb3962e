"""Proto sampling params -> SGLang's sampling_params (workers/engine_request.py): unset
fields left to SGLang's defaults, the seed as the int64 SGLang takes; require_reasoning at the
request's top level, as SGLang's GenerateReqInput has it."""

from __future__ import annotations

import pytest

from ostinato.v1 import common_pb2, worker_pb2
from workers.engine_request import engine_request, sampling_dict


@pytest.mark.parametrize(("seed", "sent"), [(0, 0), (7, 7), ((1 << 63) - 1, (1 << 63) - 1),
                                            (1 << 63, -(1 << 63)), ((1 << 64) - 1, -1)])
def test_the_seed_goes_as_sglangs_int64(seed: int, sent: int) -> None:
    assert sampling_dict(common_pb2.SamplingParams(seed=seed))["sampling_seed"] == sent


def test_unset_fields_are_left_out() -> None:
    assert sampling_dict(common_pb2.SamplingParams()) == {}
    assert sampling_dict(common_pb2.SamplingParams(max_new_tokens=3, stop=["x"], ignore_eos=True),
                         '{"type": "object"}') == {
        "max_new_tokens": 3, "stop": ["x"], "ignore_eos": True, "json_schema": '{"type": "object"}'}


def test_logit_bias_goes_with_string_keys_as_sglang_takes_it() -> None:
    sp = common_pb2.SamplingParams(logit_bias={50256: -100.0, 3: 2.5})
    assert sampling_dict(sp)["logit_bias"] == {"3": 2.5, "50256": -100.0}


def test_sglangs_extensions_go_under_their_sglang_names() -> None:
    sp = common_pb2.SamplingParams(top_k=20, min_p=0.5, repetition_penalty=1.5, min_new_tokens=7)
    assert sampling_dict(sp) == {"top_k": 20, "min_p": 0.5, "repetition_penalty": 1.5,
                                 "min_new_tokens": 7}


def test_special_tokens_kept_only_when_asked() -> None:
    assert "skip_special_tokens" not in sampling_dict(common_pb2.SamplingParams())
    assert sampling_dict(common_pb2.SamplingParams(), "", True) == {"skip_special_tokens": False}


@pytest.mark.parametrize(("required", "grammar", "sent"), [
    (False, {"json_schema": "{}"}, False),
    (True, {"json_schema": "{}"}, True),
    (True, {"structural_tag": "{}"}, True),
    (True, {}, False),  # no grammar for it to gate: not sent (an older SGLang refuses it)
])
def test_require_reasoning_goes_as_sglangs_top_level_field_only_under_a_grammar(
        required: bool, grammar: dict[str, str], sent: bool) -> None:
    request = worker_pb2.GenerateRequest(prompt="x", require_reasoning=required, **grammar)
    body = engine_request(request, "rid-1").body(stream=False)
    assert body.get("require_reasoning") is (True if sent else None)
    assert "require_reasoning" not in body["sampling_params"]
