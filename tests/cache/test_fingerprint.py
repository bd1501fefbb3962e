"""What a cached answer is keyed by (cache/fingerprint.py): pure."""

from __future__ import annotations

import pytest

from cache.fingerprint import exact_digest, semantic_key
from ostinato.v1 import common_pb2


def call(**sampling: object) -> common_pb2.CallSpec:
    return common_pb2.CallSpec(
        model="m", messages=[common_pb2.Message(role="user", content="Name a colour.")],
        sampling=common_pb2.SamplingParams(temperature=0.0, **sampling))  # type: ignore[arg-type]


@pytest.mark.parametrize("other", [
    {"logit_bias": {7: -100.0}},  # a biased call is another answer
    {"logit_bias": {7: 100.0}},
    {"logit_bias": {8: -100.0}},
    {"max_new_tokens": 9},
])
def test_every_sampling_parameter_is_in_both_keys(other: dict) -> None:
    base = call(max_new_tokens=8, logit_bias={7: -50.0})
    changed = call(**{"max_new_tokens": 8, **other})
    assert exact_digest("t", base) != exact_digest("t", changed)
    a, b = semantic_key("t", base), semantic_key("t", changed)
    assert a is not None and b is not None and a.context != b.context


def test_the_chat_templates_variables_are_in_both_keys() -> None:
    base, quiet = call(), call()
    quiet.chat_template_kwargs = '{"enable_thinking": false}'
    assert exact_digest("t", base) != exact_digest("t", quiet)
    a, b = semantic_key("t", base), semantic_key("t", quiet)
    assert a is not None and b is not None and a.context != b.context


@pytest.mark.parametrize("field", [{"reasoning_effort": "low"}, {"reasoning_in_text": True}])
def test_how_a_reasoning_model_answers_is_in_both_keys(field: dict) -> None:
    base, other = call(), call()
    for name, value in field.items():
        setattr(other, name, value)
    assert exact_digest("t", base) != exact_digest("t", other)
    a, b = semantic_key("t", base), semantic_key("t", other)
    assert a is not None and b is not None and a.context != b.context


def test_a_logit_bias_keys_the_same_in_any_order() -> None:
    ids = [3, 50256, 1, 1 << 63]
    forward, backward = call(), call()
    for i in ids:
        forward.sampling.logit_bias[i] = float(i % 7)
    for i in reversed(ids):
        backward.sampling.logit_bias[i] = float(i % 7)
    assert exact_digest("t", forward) == exact_digest("t", backward)
