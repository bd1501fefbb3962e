"""The served model's tokenizer, for the KV-reference index's token-block hashes.

The gateway hashes each prompt's token blocks to route on the index, and workers translate
their engine's KV events (over token ids) into the same hashes, so both must tokenize as the
engine does. Specs:

- ``sim``: the sim engine's word-piece tokenizer (workers/sim/tokenizer.py);
- ``hf:<name or path>``: a Hugging Face tokenizer loaded offline (``transformers``), encoding
  as SGLang's tokenizer manager does (special tokens included), for real SGLang engines.

The same spec gives the chat renderer (load_renderer): the model's chat template, which the
gateway applies once to every chat call; its ids go to the engine, the index and the planner.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Protocol

from cache.block_hash import Tokenize
from ostinato.config import ConfigError, check_tokenizer_spec


@lru_cache(maxsize=4)
def load_tokenizer(spec: str) -> Tokenize:
    check_tokenizer_spec(spec, "tokenizer")
    if spec == "sim":
        from workers.sim.tokenizer import tokenize
        return tokenize
    tok = _hf_tokenizer(spec)

    def encode(text: str) -> list[int]:
        return list(tok.encode(text))

    return encode


class TemplateRefused(ValueError):
    """The chat template refused the messages (its ``raise_exception``, or an error while
    rendering them): the client's to mend, as SGLang answers it (400), not the gateway's
    failure (a 500 before: session 70)."""


class ChatRenderer(Protocol):
    """The served model's chat template and tokenizer: messages (and tools) -> prompt text and
    the token ids the engine gets. Inputs are what ``apply_chat_template`` takes; raises
    TemplateRefused."""

    def render(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
               template_kwargs: dict[str, Any] | None = None) -> tuple[str, list[int]]: ...


class SimRenderer:
    """The sim model's own template (workers/sim/chat_template.py) and tokenizer."""

    def __init__(self, tool_format: str) -> None:
        self._tool_format = tool_format

    def render(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
               template_kwargs: dict[str, Any] | None = None) -> tuple[str, list[int]]:
        from workers.sim.chat_template import render
        from workers.sim.tokenizer import tokenize

        # the two variables the sim model's template reads; others are ignored, as a Jinja
        # template ignores those it does not use
        kwargs = template_kwargs or {}
        text = render(messages, tools, tool_format=self._tool_format,
                      enable_thinking=kwargs.get("enable_thinking", True),
                      reasoning_effort=kwargs.get("reasoning_effort"))
        return text, tokenize(text)


class HfRenderer:
    """A Hugging Face tokenizer's own chat template, loaded offline: the ids are exactly what
    ``apply_chat_template(..., tokenize=True)`` gives (special tokens as the template writes
    them, none added), which is what SGLang's OpenAI server sends its engine."""

    def __init__(self, tokenizer: Any) -> None:
        if not getattr(tokenizer, "chat_template", None):
            raise ConfigError("the tokenizer has no chat_template")
        self._tok = tokenizer

    def render(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
               template_kwargs: dict[str, Any] | None = None) -> tuple[str, list[int]]:
        from jinja2 import TemplateError

        kwargs: dict[str, Any] = {**(template_kwargs or {}), "tools": tools or None,
                                  "add_generation_prompt": True}
        try:
            text = str(self._tok.apply_chat_template(messages, tokenize=False, **kwargs))
        except (TemplateError, TypeError, ValueError, LookupError, AttributeError,
                ArithmeticError) as exc:  # (jinja's, or a filter's: `|items` on text)
            raise TemplateRefused(f"the model's chat template refused the messages: {exc}") \
                from None
        # Rendered once; encoded as apply_chat_template(tokenize=True) does (the template
        # writes its own special tokens). tests/ostinato/test_chat_renderer.py checks both agree.
        return text, list(self._tok(text, add_special_tokens=False)["input_ids"])


def _hf_tokenizer(spec: str) -> Any:
    try:
        from transformers import AutoTokenizer
    except ImportError as exc:  # pragma: no cover - transformers ships with sentence-transformers
        raise ConfigError(f"tokenizer {spec!r} needs the transformers package") from exc
    try:
        return AutoTokenizer.from_pretrained(spec[3:], local_files_only=True)
    except (OSError, ValueError) as exc:  # (a folder without tokenizer files: ValueError)
        raise ConfigError(f"tokenizer {spec!r}: cannot load it offline: {exc}") from exc


@lru_cache(maxsize=4)
def load_renderer(spec: str, tool_format: str = "hermes") -> ChatRenderer:
    """`sim`: the sim model's template, tool calls written in `tool_format`; `hf:<path>`: the
    tokenizer's own chat template (which writes tool calls its own way)."""
    check_tokenizer_spec(spec, "tokenizer")
    if spec == "sim":
        return SimRenderer(tool_format)
    return HfRenderer(_hf_tokenizer(spec))
