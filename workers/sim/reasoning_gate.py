"""Where a thinking model's constrained answer starts: SGLang's reasoning gate, mirrored.

A sim engine with a reasoning format is an SGLang launched with --reasoning-parser (the mesh
launches it so): SGLang then wraps its grammar backend (sglang/srt/constrained/
base_grammar_backend.py `create_grammar_backend`: ReasonerGrammarBackend when
server_args.reasoning_parser is set and the parser's think_end_token encodes to token ids).
Each constrained request's grammar is a ReasonerGrammarObject
(sglang/srt/constrained/reasoner_grammar_backend.py), started by `maybe_init_reasoning` from
the request's `require_reasoning` (GenerateReqInput; SGLang's OpenAI server sets it from
serving_chat.py `_get_reasoning_from_request`: the parser's default or the template's
thinking switch, e.g. Qwen3's enable_thinking false turns it off):
- require_reasoning true: the output starts in the thinking, unconstrained (`fill_vocab_mask`
  masks nothing while `_is_thinking`); once the think_end_token's ids have been generated in
  order (`transfer_state`) the grammar applies to every later token. An output that never
  writes the end tag (a template that closed the thinking in the prompt) is never
  constrained.
- require_reasoning false: the grammar applies from the first token (`tokens_after_end` 0),
  so a model made to write JSON writes no thinking, unless the grammar itself admits some
  (gpt-oss's structural tags take its analysis: ostinato/tool_grammars.py).
The constraint is compiled either way (an invalid one is refused: generate_request.py).
Pure: no I/O.
"""

from __future__ import annotations

import json
from typing import Any

from ostinato.harmony import END, HarmonyFormat
from ostinato.reasoning_formats import REASONING_FORMATS

CONSTRAINTS = ("json_schema", "structural_tag")


def require_reasoning(body: dict[str, Any]) -> bool:
    """The body's require_reasoning (absent or null: false); ValueError for a value that is
    not a boolean, in SGLang's words (sglang/api/v1/api_types.py `_expect_bool`)."""
    value = body.get("require_reasoning")
    if value is None or isinstance(value, bool):
        return bool(value)
    kind = (f"integer `{value}`" if isinstance(value, int) else
            f"floating point `{value}`" if isinstance(value, float) else
            f'string "{value}"' if isinstance(value, str) else
            "sequence" if isinstance(value, list) else
            "map" if isinstance(value, dict) else type(value).__name__)
    raise ValueError(f"invalid type: {kind}, expected a boolean")


def _admits_free_text(fmt: Any) -> bool:
    """Whether a structural tag's format holds free text (any_text: gpt-oss's analysis)."""
    if isinstance(fmt, dict):
        return fmt.get("type") == "any_text" or any(_admits_free_text(v) for v in fmt.values())
    if isinstance(fmt, list):
        return any(_admits_free_text(v) for v in fmt)
    return False


def _through_end(thought: str, reasoning_format: str) -> str:
    """The thinking up to and with its end tag: what comes after is the grammar's."""
    fmt = REASONING_FORMATS[reasoning_format]
    end = END if isinstance(fmt, HarmonyFormat) else fmt.end
    cut = thought.find(end)
    return thought if cut < 0 else thought[:cut + len(end)]


def gated(sp: dict[str, Any], reasoning_format: str, thought: str, constrained: str | None,
          free: str | None, required: bool) -> tuple[str, str | None]:
    """(the thinking, the answer's script) the model writes, as SGLang's gate leaves them.

    `thought` is what the model thinks free ("" when it does not think: no reasoning format,
    or a template that opened no thinking); `constrained` its answer under the request's
    json_schema / structural_tag (in `sp`), `free` its answer without one; `required` the
    request's require_reasoning; without a `reasoning_format` there is no gate (SGLang
    without --reasoning-parser)."""
    if all(sp.get(name) is None for name in CONSTRAINTS):
        return thought, constrained  # nothing to gate: the model thinks, then answers
    if not required or not reasoning_format:  # the grammar from the first token
        tag = sp.get("structural_tag")
        inside = tag is not None and _admits_free_text(json.loads(tag))
        return (thought if inside else ""), constrained
    if not thought:  # no end tag ever comes: the grammar never applies
        return "", free
    return _through_end(thought, reasoning_format), constrained
