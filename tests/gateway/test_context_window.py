"""A call fitted to the model's context window once its prompt is tokenized (pure)."""

from __future__ import annotations

import pytest

from gateway.calls import InvalidCall
from gateway.context_window import ContextExceeded, ContextWindow, answer_room, fit
from ostinato.config import GatewayConfig
from ostinato.sdk_types import call_spec

USER = [{"role": "user", "content": "hello"}]


@pytest.mark.parametrize(("window", "prompt", "kwargs", "max_new"), [
    # no window known: the default when none is given, else as given
    (0, 10_000, {}, 256),
    (0, 10_000, {"max_tokens": 9000}, 9000),
    # within the window: as given, or the default
    (1000, 100, {}, 256),
    (1000, 100, {"max_tokens": 900}, 900),  # exactly to the end
    # none given: the default cut to what the window leaves (as SGLang generates to its end)
    (1000, 900, {}, 100),
    (1000, 999, {}, 1),
    (1000, 900, {"min_tokens": 100}, 100),
])
def test_max_tokens_fitted(window: int, prompt: int, kwargs: dict, max_new: int) -> None:
    call = call_spec(messages=USER, **kwargs)
    out = fit(call, prompt, ContextWindow(window, 256))
    assert out.sampling.max_new_tokens == max_new
    assert call.sampling.HasField("max_new_tokens") == ("max_tokens" in kwargs)  # not changed


@pytest.mark.parametrize(("prompt", "kwargs", "param", "message"), [
    (1000, {}, "messages", "maximum context length is 1000 tokens. However, your messages "
                           "resulted in 1000 tokens"),
    (1500, {"max_tokens": 5}, "messages", "resulted in 1500 tokens"),
    (900, {"max_tokens": 101}, "max_tokens", r"you requested 1001 tokens \(900 in the messages, "
                                             r"101 in the completion\)"),
    (950, {"min_tokens": 60}, "min_tokens", "leaves 50 for the completion, fewer than its min "
                                            r"tokens \(60\)"),
])
def test_what_does_not_fit_is_context_length_exceeded(prompt: int, kwargs: dict, param: str,
                                                      message: str) -> None:
    with pytest.raises(ContextExceeded, match=message) as refused:
        fit(call_spec(messages=USER, **kwargs), prompt, ContextWindow(1000, 256))
    assert refused.value.param == param
    assert refused.value.error_code == "context_length_exceeded"


@pytest.mark.parametrize(("window", "max_input", "prompt", "refused"), [
    # SGLang's max_req_input_len under the window (engine review 2026-12-05 F2): a prompt
    # past it is refused here, as the engine would, with OpenAI's code
    (1000, 994, 995, True),
    (1000, 994, 994, False),
    (0, 994, 995, True),  # the window not known, the input limit is
    (1000, 0, 995, False),  # no limit but the window's
])
def test_a_prompt_past_the_engines_input_limit_is_context_length_exceeded(
        window: int, max_input: int, prompt: int, refused: bool) -> None:
    call = call_spec(messages=USER, max_tokens=1)
    if not refused:
        assert fit(call, prompt, ContextWindow(window, 256, max_input)) is call
        return
    with pytest.raises(ContextExceeded, match=f"maximum input length is {max_input} tokens") as err:
        fit(call, prompt, ContextWindow(window, 256, max_input))
    assert err.value.param == "messages" and err.value.error_code == "context_length_exceeded"


@pytest.mark.parametrize("window", [0, 1000])
@pytest.mark.parametrize(("kwargs", "param"), [({"messages": USER}, "messages"),
                                              ({"prompt": " "}, "prompt")])
def test_a_prompt_of_no_tokens_is_refused(window: int, kwargs: dict, param: str) -> None:
    with pytest.raises(InvalidCall, match="resulted in no tokens") as refused:
        fit(call_spec(**kwargs), 0, ContextWindow(window, 256))
    assert refused.value.param == param
    assert not isinstance(refused.value, ContextExceeded)


@pytest.mark.parametrize(("window", "default", "room"), [
    (0, 16_384, 16_384),  # no window known: the default
    (131_072, 16_384, 16_384),
    (4096, 16_384, 1024),  # a quarter of the window at most
    (4096, 256, 256),  # an operator's default below it
    (2, 16_384, 1),
])
def test_truncation_leaves_room_for_an_answer(window: int, default: int, room: int) -> None:
    assert answer_room(ContextWindow(window, default)) == room


@pytest.mark.parametrize(("kwargs", "default"), [
    # none of the gateway's own: its limit (OpenAI's max tokens are optional), cut to what
    # the window leaves
    ({"context_length": 131_072}, 16_384),
    ({"context_length": 131_072, "max_new_tokens_limit": 2048}, 2048),
    ({"context_length": 131_072, "default_max_new_tokens": 300}, 300),
    # the window not known here: what fits beside a prompt in any (16,384 past an 8k
    # model's window was refused by the engine: diff review 2026-12-07)
    ({}, 256),
    ({"default_max_new_tokens": 300}, 300),
])
def test_the_default_max_tokens_is_the_limit_unless_set(kwargs: dict, default: int) -> None:
    assert GatewayConfig(**kwargs).default_output_tokens == default
