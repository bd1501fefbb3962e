"""The served model's context window at the gateway (gateway/context_window.py): learned
from the engine by `ostinato up` (its /v1/models max_model_len; here the sim engine's,
set small), what does not fit is refused at once with OpenAI's context_length_exceeded
(over HTTP and gRPC), and a call naming no max tokens gets what the window leaves."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

import ostinato
from ostinato.mesh import Mesh
from tests.conftest import http_base, running_mesh

WINDOW = 300
ROOM = WINDOW // 4  # what truncation leaves for an answer of no max tokens (answer_room)


@pytest.fixture(scope="module")
def mesh() -> Iterator[Mesh]:
    with running_mesh({"workers": 1, "gateway": {"allow_anonymous": True, "semantic_cache": False},
                       "sim_engine": {"zero_cost": True, "context_length": WINDOW}}) as m:
        yield m


@pytest.fixture(scope="module")
def client(mesh: Mesh) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=http_base(mesh), api_key="none", max_retries=0) as c:
        yield c


def _prompt_tokens(client: openai.OpenAI, text: str) -> int:
    out = client.chat.completions.create(model="", messages=[{"role": "user", "content": text}],
                                         max_tokens=1)
    assert out.usage is not None
    return out.usage.prompt_tokens


def test_the_window_comes_from_the_engine(mesh: Mesh, client: openai.OpenAI) -> None:
    assert mesh.config.gateway.context_length == 0  # not configured: learned
    assert f"context_length: {WINDOW}" in (mesh.workdir / "mesh.yaml").read_text()
    # and the gateway's /v1/models says it, as the engine's does (engine review F5)
    [model] = client.models.list().data
    assert model.model_extra and model.model_extra["max_model_len"] == WINDOW
    assert client.models.retrieve(model.id).model_extra["max_model_len"] == WINDOW  # type: ignore[index]


@pytest.mark.parametrize(("extra", "param"), [(None, "messages"), (1, "max_tokens"),
                                              (1, "max_completion_tokens")])
def test_what_does_not_fit_is_context_length_exceeded(client: openai.OpenAI, extra: int | None,
                                                      param: str) -> None:
    """A prompt past the window (extra None), or one whose max tokens (sent under the name
    `param`) pass it by `extra`: the error names the field the request used."""
    short = _prompt_tokens(client, "Hi.")
    kw = {"messages": [{"role": "user", "content": "word " * 2000}]} if extra is None else {
        "messages": [{"role": "user", "content": "Hi."}], param: WINDOW - short + extra}
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="", **kw)
    body = refused.value.body
    assert isinstance(body, dict) and body["code"] == "context_length_exceeded"
    assert body["param"] == param and f"maximum context length is {WINDOW} tokens" in body["message"]


def test_max_tokens_to_the_end_of_the_window_are_taken(client: openai.OpenAI) -> None:
    short = _prompt_tokens(client, "Hi.")
    out = client.chat.completions.create(
        model="", messages=[{"role": "user", "content": "Hi."}], max_tokens=WINDOW - short,
        extra_body={"ignore_eos": True})
    assert out.usage is not None and out.usage.completion_tokens == WINDOW - short


def test_no_max_tokens_gets_what_the_window_leaves(client: openai.OpenAI) -> None:
    # no default of the gateway's own (OpenAI's max tokens are optional): the answer runs to
    # the window's end (API review 2026-12-07: a default of 256 cut tool calls short)
    text = "word " * 10
    tokens = _prompt_tokens(client, text)
    assert tokens < WINDOW - 200, tokens
    out = client.chat.completions.create(model="", messages=[{"role": "user", "content": text}],
                                         extra_body={"ignore_eos": True})
    assert out.usage is not None and out.usage.completion_tokens == WINDOW - tokens
    assert out.choices[0].finish_reason == "length"


def test_over_grpc_it_is_invalid_argument(mesh: Mesh) -> None:
    with ostinato.Client(mesh.endpoints.gateway) as c, c.program() as program, pytest.raises(
            ostinato.InvalidArgument, match=f"maximum context length is {WINDOW} tokens"):
        program.call(messages=[{"role": "user", "content": "word " * 2000}], max_tokens=4)


def test_responses_truncation_auto_drops_the_oldest_items_to_fit(client: openai.OpenAI) -> None:
    """OpenAI's truncation "auto": items dropped from the conversation's beginning (a call
    with its output) until it fits; "disabled" (the default) refuses it."""
    turns: list = [{"type": "function_call", "call_id": "c0", "name": "f", "arguments": "{}"},
                   {"type": "function_call_output", "call_id": "c0", "output": "word " * 30}]
    turns += [{"role": "user", "content": f"turn {i}: " + "word " * 30} for i in range(8)]
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model="", input=turns, max_output_tokens=8)
    assert isinstance(refused.value.body, dict)
    assert refused.value.body["code"] == "context_length_exceeded"
    # in the Responses API's words: the input (API review 2026-12-06: "your messages")
    message = refused.value.body["message"]
    assert "your input" in message and "messages" not in message, message
    out = client.responses.create(model="", input=turns, max_output_tokens=8,
                                  truncation="auto")
    assert out.output_text and out.usage is not None  # (incomplete: at max_output_tokens)
    assert out.usage.input_tokens + 8 <= WINDOW
    # as few dropped as fit: one more item would not have
    assert out.usage.input_tokens + 8 > WINDOW - _prompt_tokens(client, turns[2]["content"])


def test_truncation_leaves_room_for_the_default_output(client: openai.OpenAI) -> None:
    """No max_output_tokens: what is kept leaves a quarter of the window for the answer (no
    answer cut to a token by a window filled with input)."""
    turns = [{"role": "user", "content": f"turn {i}: " + "word " * 10} for i in range(14)]
    with pytest.raises(openai.BadRequestError):  # whole, they leave no room: some must go
        client.responses.create(model="", input=turns, max_output_tokens=ROOM)
    out = client.responses.create(model="", input=turns, truncation="auto")
    assert out.usage is not None and out.usage.input_tokens + ROOM <= WINDOW
    # as few left out as leave the room: one more turn would not have
    assert out.usage.input_tokens + ROOM > WINDOW - _prompt_tokens(client, turns[0]["content"])


def test_empty_messages_are_answered(client: openai.OpenAI) -> None:
    """As OpenAI and SGLang take them: the chat template writes the turns, so the prompt has
    tokens though every message's text is empty (a prompt of none is refused: unit tests)."""
    chat = client.chat.completions.create(model="", max_tokens=4,
                                          messages=[{"role": "user", "content": ""}])
    assert chat.usage is not None and chat.usage.prompt_tokens > 0
    response = client.responses.create(model="", max_output_tokens=4, input=[
        {"role": "user", "content": [{"type": "input_text", "text": ""}]}])
    assert response.status in ("completed", "incomplete") and response.usage is not None
    assert response.usage.input_tokens > 0
