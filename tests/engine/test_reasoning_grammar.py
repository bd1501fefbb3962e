"""A reasoning model's constrained answer on real SGLang (`make test-engine`): the worker
launches SGLang with the gateway's reasoning parser (--reasoning-parser deepseek-r1), and the
gateway asks for require_reasoning on a chat turn whose template leaves the thinking on.

What SGLang 0.5.23 does with both (sglang/srt/constrained/base_grammar_backend.py
create_grammar_backend: the grammar backend wrapped in ReasonerGrammarBackend;
reasoner_grammar_backend.py ReasonerGrammarObject: a request with require_reasoning starts
in its thinking, unconstrained, and the grammar applies once the parser's think_end_token's
ids, `</think>` here, have been generated in order; without it, from the first token;
schedule_batch.py Req.update_reasoning_tokens: meta_info.reasoning_tokens counts the tokens
up to that end).

The tiny random-weight model's tokenizer has no `</think>` token, but SGLang's gate matches
a token sequence (its five tokens here, TokenSequenceMatcher), so the gate is on. What the
random model cannot do is close its thinking: it never writes those five tokens in order,
and --enable-strict-thinking (which forces the end after SGLANG_MAX_THINK_TOKENS) cannot run
on CPU (xgrammar's apply_vocab_mask has no CPU path for a filter-only grammar object). So
this checks the gate from both sides, honestly: with require_reasoning the whole output is
thinking, unconstrained (reasoning_tokens = completion_tokens, the gateway hands it back as
reasoning_content); without (thinking switched off) the same request is schema-valid JSON.
That thinking then the JSON follows, the sim engine shows (tests/workers/test_sim_reasoning.py,
tests/integration/test_reasoning_grammar.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import openai
import pytest
import requests

from ostinato.mesh import Mesh
from ostinato.tokenizers import load_renderer
from tests.engine.conftest import MODEL, engine_mesh

pytestmark = pytest.mark.engine
KEY = "key-thinker-engine"
SCHEMA = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12},
                                           "days": {"enum": [1, 2, 3, 7]}},
          "required": ["city", "days"], "additionalProperties": False}
FORMAT = {"type": "json_schema", "json_schema": {"name": "trip", "schema": SCHEMA}}
MESSAGES = [{"role": "user", "content": "Plan a trip."}]


@pytest.fixture(scope="module")
def mesh(engine_build: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    with engine_mesh(engine_build, str(tmp_path_factory.mktemp("thinker")), 1,
                     {"engine_reasoning_parser": "deepseek-r1"},
                     {"api_keys": {KEY: "thinker"}, "reasoning_parser": "deepseek-r1"}) as mesh:
        yield mesh


@pytest.fixture(scope="module")
def client(mesh: Mesh) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"http://{mesh.endpoints.gateway_http}/v1", api_key=KEY,
                       max_retries=0) as c:
        yield c


def test_the_worker_launches_sglang_with_the_reasoning_parser(mesh: Mesh) -> None:
    info = requests.get(f"{mesh.endpoints.engines[0]}/get_server_info", timeout=30).json()
    assert info["reasoning_parser"] == "deepseek-r1"


def _generate(mesh: Mesh, require_reasoning: bool) -> dict[str, Any]:
    prompt = load_renderer(f"hf:{MODEL}").render(MESSAGES, None, {})[1]
    body = {"input_ids": prompt, "require_reasoning": require_reasoning,
            "sampling_params": {"max_new_tokens": 48, "temperature": 0,
                                "json_schema": json.dumps(SCHEMA)}}
    resp = requests.post(f"{mesh.endpoints.engines[0]}/generate", json=body, timeout=300)
    resp.raise_for_status()
    out: dict[str, Any] = resp.json()
    return out


def test_sglang_holds_the_grammar_until_the_thinking_ends(mesh: Mesh) -> None:
    """On the engine itself: require_reasoning makes every token thinking, unconstrained (the
    random model never writes `</think>`); without it the grammar holds from the first."""
    held = _generate(mesh, require_reasoning=True)
    meta = held["meta_info"]
    assert meta["reasoning_tokens"] == meta["completion_tokens"] == 48
    assert "</think>" not in held["text"]
    with pytest.raises(json.JSONDecodeError):
        json.loads(held["text"], strict=False)
    at_once = _generate(mesh, require_reasoning=False)
    assert at_once["meta_info"]["reasoning_tokens"] == 0
    jsonschema.validate(json.loads(at_once["text"], strict=False), SCHEMA)


def test_a_thinking_turn_is_thinking_until_it_ends(client: openai.OpenAI) -> None:
    """Through the mesh: the gateway asks for require_reasoning (DeepSeek-R1's thinking is on
    by default), so SGLang leaves the thinking free; the gateway reads it all as
    reasoning_content (the output never reached `</think>`)."""
    out = client.chat.completions.create(model="tiny-llama", messages=MESSAGES, max_tokens=48,
                                         temperature=0, response_format=FORMAT)  # type: ignore[arg-type]
    choice = out.choices[0]
    assert choice.finish_reason == "length"
    assert (choice.message.model_extra or {}).get("reasoning_content")
    assert not choice.message.content


def test_with_the_thinking_switched_off_the_answer_is_constrained_at_once(
        client: openai.OpenAI) -> None:
    """chat_template_kwargs {"thinking": false}: no require_reasoning (the gateway's rule,
    gateway/prompts.py thinks_first; SGLang's server would still send it for this template,
    which has no thinking toggle), and the grammar applies from the first token."""
    out = client.chat.completions.create(
        model="tiny-llama", messages=MESSAGES, max_tokens=200, temperature=0,
        response_format=FORMAT,  # type: ignore[arg-type]
        extra_body={"chat_template_kwargs": {"thinking": False}})
    message = out.choices[0].message
    assert not (message.model_extra or {}).get("reasoning_content")
    jsonschema.validate(json.loads(message.content or "", strict=False), SCHEMA)
