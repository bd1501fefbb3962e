"""The served model's chat template: a real Hugging Face tokenizer's, applied offline, and the
sim model's own; tools and tool calls rendered, and the ids are exactly the template's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.prompts import prepare
from ostinato.sdk_types import call_spec
from ostinato.tokenizers import HfRenderer, TemplateRefused, load_renderer, load_tokenizer
from ostinato.v1 import common_pb2
from workers.sim.tokenizer import detokenize

# A Llama-3.1-like template: BOS, tools as JSON in a system turn, tool calls as
# <|python_tag|>{"name", "parameters"}, ipython turns for tool results.
TEMPLATE = (
    "{{- bos_token }}"
    "{%- if tools %}<|start_header_id|>system<|end_header_id|>\n\nYou may call:\n"
    "{%- for t in tools %}\n{{ t | tojson }}{%- endfor %}<|eot_id|>{%- endif %}"
    "{%- for m in messages %}"
    "<|start_header_id|>{{ 'ipython' if m.role == 'tool' else m.role }}<|end_header_id|>\n\n"
    "{%- if m.tool_calls %}<|python_tag|>{%- for tc in m.tool_calls %}"
    "{{ {'name': tc.function.name, 'parameters': tc.function.arguments} | tojson }}"
    "{%- if not loop.last %};{%- endif %}{%- endfor %}"
    "{%- else %}{{ m.content }}{%- endif %}<|eot_id|>"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n"
    "{%- if reasoning_effort is defined %}[effort {{ reasoning_effort }}]{%- endif %}"
    "{%- if enable_thinking is defined and not enable_thinking %}<think></think>{%- endif %}"
    "{%- endif %}"
)
SPECIAL = ["<unk>", "<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
           "<|python_tag|>"]
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


@pytest.fixture(scope="module")
def hf_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A byte-level BPE tokenizer trained here on local text, with a chat template: no download."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    text = [line for p in sorted(Path("/usr/share/common-licenses").glob("*"))[:4] if p.is_file()
            for line in p.read_text(errors="ignore").splitlines()] or ["the weather in paris"] * 50
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(text, trainers.BpeTrainer(
        vocab_size=600, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>",
                                   eos_token="<|eot_id|>", unk_token="<unk>")
    fast.chat_template = TEMPLATE
    out = tmp_path_factory.mktemp("tiny-llama-tokenizer")
    fast.save_pretrained(out)
    return out


def conversation() -> tuple[list[dict], list[dict]]:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 C"},
    ]
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "weather",
                                               "parameters": WEATHER}}]
    return messages, tools


def test_hf_template_renders_exactly_as_apply_chat_template(hf_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(hf_model_dir), local_files_only=True)
    messages, tools = conversation()
    text, ids = load_renderer(f"hf:{hf_model_dir}").render(messages, tools)
    assert text == tok.apply_chat_template(messages, tools=tools, add_generation_prompt=True,
                                           tokenize=False)
    assert ids == list(tok.apply_chat_template(messages, tools=tools, add_generation_prompt=True,
                                               tokenize=True, return_dict=True)["input_ids"])
    assert '"name": "get_weather"' in text and "<|python_tag|>" in text and "sunny" in text
    assert ids.count(tok.bos_token_id) == 1 and ids[0] == tok.bos_token_id  # no second BOS


def test_chat_template_kwargs_reach_the_template(hf_model_dir: Path) -> None:
    """SGLang's chat_template_kwargs: {"enable_thinking": false} as Qwen3's template reads it."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(hf_model_dir), local_files_only=True)
    messages, tools = conversation()
    renderer = load_renderer(f"hf:{hf_model_dir}")
    text, _ = renderer.render(messages, tools, {"enable_thinking": False})
    assert text == tok.apply_chat_template(messages, tools=tools, add_generation_prompt=True,
                                           tokenize=False, enable_thinking=False)
    assert text.endswith("<think></think>") and text != renderer.render(messages, tools)[0]
    call = call_spec(messages=[{"role": "user", "content": "Hi"}],
                     chat_template_kwargs={"enable_thinking": False})
    spec = f"hf:{hf_model_dir}"
    assert prepare(call, renderer, load_tokenizer(spec), "llama3").text.endswith("<think></think>")


def test_reasoning_effort_reaches_the_template(hf_model_dir: Path) -> None:
    """OpenAI's reasoning_effort, as SGLang's server passes it: the template's variable, and
    thinking / enable_thinking off for "none"."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(hf_model_dir), local_files_only=True)
    spec = f"hf:{hf_model_dir}"
    renderer, tokenize = load_renderer(spec), load_tokenizer(spec)
    hi = [{"role": "user", "content": "Hi"}]
    for effort, tail in (("low", "[effort low]"), ("none", "[effort none]<think></think>")):
        text = prepare(call_spec(messages=hi, reasoning_effort=effort), renderer, tokenize,
                       "llama3").text
        assert text.endswith(tail)
        assert text == tok.apply_chat_template(
            hi, add_generation_prompt=True, tokenize=False, reasoning_effort=effort,
            thinking=effort != "none", enable_thinking=effort != "none")


def test_the_gateway_sends_the_templates_ids(hf_model_dir: Path) -> None:
    """What the gateway prepares for the engine (input_ids), the KV index and the planner."""
    spec = f"hf:{hf_model_dir}"
    messages, tools = conversation()
    call = call_spec(messages=[{"role": m["role"], "content": m["content"]} for m in messages])
    call.messages[2].tool_calls.append(common_pb2.ToolCall(id="call_1", name="get_weather",
                                                           arguments='{"city": "Paris"}'))
    call.messages[3].tool_call_id = "call_1"
    call.tools.append(common_pb2.Tool(name="get_weather", description="weather",
                                      parameters_json=json.dumps(WEATHER)))
    prepared = prepare(call, load_renderer(spec), load_tokenizer(spec), "llama3")
    assert (prepared.text, prepared.ids) == load_renderer(spec).render(messages, tools)
    assert prepared.parser is not None and prepared.parser.name == "llama3"


def test_a_tokenizer_without_a_template_is_refused(tmp_path: Path, hf_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    from ostinato.config import ConfigError

    tok = AutoTokenizer.from_pretrained(str(hf_model_dir), local_files_only=True)
    tok.chat_template = None
    tok.save_pretrained(tmp_path)
    (tmp_path / "chat_template.jinja").unlink(missing_ok=True)
    with pytest.raises(ConfigError, match="chat_template"):
        load_renderer(f"hf:{tmp_path}")


def test_sim_template_round_trips_through_its_token_ids() -> None:
    messages, tools = conversation()
    text, ids = load_renderer("sim", "hermes").render(messages, tools)
    assert detokenize(ids) == text
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>' in text
    assert text.endswith("<|im_start|>tool\nsunny, 21 C<|im_end|>\n<|im_start|>assistant\n")


@pytest.mark.parametrize(("template", "refusal"), [
    ("{{ raise_exception('Conversation roles must alternate user/assistant') }}",
     "roles must alternate"),  # (Mistral's and Gemma's templates refuse so)
    ("{%- for m in messages %}{%- for tc in m.tool_calls or [] %}"
     "{%- for k, v in tc.function.arguments.items() %}{{ k }}{%- endfor %}{%- endfor %}"
     "{%- endfor %}", "items"),  # (a template indexing into a malformed call's text)
])
def test_a_template_that_refuses_the_messages_says_so(hf_model_dir: Path, template: str,
                                                      refusal: str) -> None:
    """The client's to mend (HTTP 400, as SGLang answers it), not the gateway's failure (a
    500 before: session 70)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(hf_model_dir), local_files_only=True)
    tok.chat_template = template
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": '}}]}]
    with pytest.raises(TemplateRefused, match=refusal):
        HfRenderer(tok).render(messages, None)


def test_a_malformed_history_call_reaches_the_template_as_text(hf_model_dir: Path) -> None:
    spec = f"hf:{hf_model_dir}"
    call = call_spec(messages=[{"role": "user", "content": "Weather in Paris?"},
                               {"role": "assistant", "content": ""},
                               {"role": "tool", "content": "bad arguments"}])
    call.messages[1].tool_calls.append(common_pb2.ToolCall(id="c1", name="get_weather",
                                                           arguments='{"city": "Par'))
    call.messages[2].tool_call_id = "c1"
    text = prepare(call, load_renderer(spec), load_tokenizer(spec), "llama3").text
    assert '"parameters": "{\\"city\\": \\"Par"' in text  # (the template's tojson of it)


ITEMS_TEMPLATE = (  # Qwen3-Coder's way with a call's arguments: each one in its own tags
    "{%- for m in messages %}{{ m.role }}: {{ m.content }}"
    "{%- for tc in m.tool_calls or [] %}<function={{ tc.function.name }}>"
    "{%- for k, v in tc.function.arguments|items %}<parameter={{ k }}>{{ v }}</parameter>"
    "{%- endfor %}</function>{%- endfor %}\n{%- endfor %}")


@pytest.mark.parametrize("arguments", ['{"city": "Par', "1e999", '{"days": 1e999}',
                                       "[" * 5000])
def test_a_template_that_cannot_take_malformed_arguments_as_text_gets_none(
        hf_model_dir: Path, tmp_path: Path, arguments: str) -> None:
    """Qwen3-Coder's template loops over `arguments|items`: text is a TypeError there (a
    500, diff review F1). It is refused (TemplateRefused), and the gateway renders the
    call with no arguments instead, so the conversation is served."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(hf_model_dir), local_files_only=True)
    tok.chat_template = ITEMS_TEMPLATE
    tok.save_pretrained(tmp_path)
    call = call_spec(messages=[{"role": "user", "content": "Weather in Paris?"},
                               {"role": "assistant", "content": ""},
                               {"role": "tool", "content": "bad arguments"}])
    call.messages[1].tool_calls.append(common_pb2.ToolCall(id="c1", name="get_weather",
                                                           arguments=arguments))
    call.messages[2].tool_call_id = "c1"
    with pytest.raises(TemplateRefused):
        HfRenderer(tok).render([{"role": "assistant", "content": "", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "x"}}]}],
            None)
    spec = f"hf:{tmp_path}"
    text = prepare(call, load_renderer(spec), load_tokenizer(spec), "qwen3_coder").text
    assert "<function=get_weather></function>" in text and "bad arguments" in text
