"""What the simulated model writes under a structural tag: an output the grammar admits.

SGLang 0.5 takes xgrammar's structural tags as `sampling_params.structural_tag` (JSON text:
{"type": "structural_tag", "format": ...}). The formats read here: const_string,
json_schema (style json, and the XML styles qwen_xml and glm_xml of the qwen3_coder and
glm45 calls' arguments, written as those models write them), regex (only Kimi K2's call
counter, KIMI_COUNTER), tag, sequence, or, tags_with_separator, the ones the gateway
writes (ostinato/tool_grammars.py); any other (and the legacy structures/triggers form) is refused,
never ignored. Where the grammar leaves a choice (an `or`) the model writes what it would
have written free: tool calls when it would call a tool (`wants_call`: tools declared, the
user's turn), else the first branch without tags (a JSON answer). A tag of free text
(`any_text`: gpt-oss's analysis, its thinking) is not a call, and is not written here: a
thinking model writes its thinking before this text, outside the grammar (workers/sim/behavior.py
`thinking`), so an `or` takes the first branch of its kind without free text (gpt-oss's
repeated role header, which follows the sim's analysis). Deterministic: the same grammar
and choice give the same output.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from ostinato.tool_format_xml import glm45_arguments, qwen3_coder_parameters
from ostinato.tool_grammars import KIMI_COUNTER
from workers.sim.json_instance import UnsupportedSchema, instance

_XML_STYLES: dict[str, Callable[[Mapping[str, object]], str]] = {
    "qwen_xml": qwen3_coder_parameters, "glm_xml": glm45_arguments}


# the regular expressions the sim writes an instance of: Kimi K2's call counter
_REGEX_INSTANCES = {KIMI_COUNTER: "0"}


def _free_text(fmt: Any) -> bool:
    """A tag of any text (a model's thinking), or a format holding one."""
    if not isinstance(fmt, dict):
        return False
    if fmt.get("type") == "any_text":
        return True
    return _free_text(fmt.get("content")) or any(_free_text(e) for e in fmt.get("elements", ()))


def _has_tags(fmt: Any) -> bool:
    """Whether `fmt` holds calls: tags, but for a tag of free text (thinking)."""
    if not isinstance(fmt, dict):
        return False
    if fmt.get("type") == "tag":
        return not _free_text(fmt.get("content"))
    if fmt.get("type") in ("tags_with_separator", "triggered_tags"):
        return True
    return any(_has_tags(e) for e in fmt.get("elements", ()))


def written(fmt: Any, choice: int, wants_call: bool) -> str:
    """An output `fmt` admits; UnsupportedSchema for a format the sim cannot write."""
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "const_string":
        return str(fmt["value"])
    if kind == "json_schema":
        return _json(fmt["json_schema"], fmt.get("style", "json"), choice)
    if kind == "tag":
        return f"{fmt['begin']}{written(fmt['content'], choice, wants_call)}{fmt['end']}"
    if kind == "sequence":
        return "".join(written(e, choice, wants_call) for e in fmt["elements"])
    if kind == "or":
        elements = fmt["elements"]
        if not elements:
            raise UnsupportedSchema("/elements", "an empty or")
        calls = [e for e in elements if _has_tags(e)]
        answers = [e for e in elements if not _has_tags(e)]
        pool = calls if wants_call and calls else answers or calls
        pick = next((e for e in pool if not _free_text(e)), pool[0])
        return written(pick, choice, wants_call)
    if kind == "tags_with_separator":
        tags = fmt["tags"]
        if not tags or not (wants_call or fmt.get("at_least_one")):
            return ""
        return written(tags[choice % len(tags)], choice, wants_call)  # one call
    if kind == "regex" and fmt.get("pattern") in _REGEX_INSTANCES:
        return _REGEX_INSTANCES[fmt["pattern"]]
    if kind == "regex":
        raise UnsupportedSchema("/pattern", f"structural tag format 'regex' with pattern "
                                f"{fmt.get('pattern')!r} (only {', '.join(_REGEX_INSTANCES)})")
    if kind == "any_text":
        raise UnsupportedSchema("/type", "structural tag format 'any_text' (free text: the sim "
                                "writes its thinking outside the grammar)")
    raise UnsupportedSchema("/type", f"structural tag format {kind!r}")


def _json(schema: Any, style: Any, choice: int) -> str:
    value = instance(schema, choice)
    if style == "json":
        return json.dumps(value, ensure_ascii=False)
    if style not in _XML_STYLES:
        raise UnsupportedSchema("/style", f"json_schema style {style!r}")
    if not isinstance(value, dict):
        raise UnsupportedSchema("/json_schema", f"style {style!r} writes an object's properties")
    return _XML_STYLES[style](value)


def written_for(structural_tag: str, choice: int, wants_call: bool) -> str:
    """The output for SGLang's `sampling_params.structural_tag` (JSON text); ValueError for
    text that is not JSON, UnsupportedSchema for a grammar the sim cannot write."""
    tag = json.loads(structural_tag)
    if not isinstance(tag, dict) or tag.get("type") != "structural_tag" or "format" not in tag:
        raise UnsupportedSchema("/", 'a structural tag is {"type": "structural_tag", '
                                '"format": ...} (the legacy structures/triggers form is not '
                                "supported by the sim engine)")
    try:
        return written(tag["format"], choice, wants_call)
    except (KeyError, TypeError, AttributeError) as exc:
        raise UnsupportedSchema("/format", f"malformed structural tag ({exc!r})") from None
