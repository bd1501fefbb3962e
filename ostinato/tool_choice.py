"""OpenAI's `tool_choice`, read into the proto's ToolChoice: one reader for the gateway's
HTTP front ends (its ValueError a 400) and the SDK (raised to the caller). Pure.

"auto", "none", "required"; {"type": "function", "function": {"name": ...}}; or
{"type": "allowed_tools", "allowed_tools": {"mode": "auto" | "required",
"tools": [{"type": "function", "function": {"name": ...}}, ...]}} (function tools, at least
one). The SDK also takes a tool's bare name for the named-function form.
"""

from __future__ import annotations

from collections.abc import Mapping

from ostinato.v1 import common_pb2

_MODES = {"auto": common_pb2.TOOL_CHOICE_MODE_AUTO, "none": common_pb2.TOOL_CHOICE_MODE_NONE,
          "required": common_pb2.TOOL_CHOICE_MODE_REQUIRED}
EXPECTED = ('tool_choice must be "auto", "none", "required", {"type": "function", '
            '"function": {"name": ...}} or {"type": "allowed_tools", ...}')
ALLOWED_EXPECTED = ('tool_choice.allowed_tools must be {"mode": "auto" or "required", '
                    '"tools": [{"type": "function", "function": {"name": ...}}, ...]} '
                    "(function tools, at least one)")


def tool_choice(raw: object, bare_names: bool = False) -> common_pb2.ToolChoice:
    """`raw` (None: unset) as a ToolChoice; ValueError (EXPECTED, ALLOWED_EXPECTED) when it
    is none of the forms. `bare_names`: a string other than a mode names a tool."""
    if raw is None:
        return common_pb2.ToolChoice()
    if isinstance(raw, str):
        if raw in _MODES:
            return common_pb2.ToolChoice(mode=_MODES[raw])
        if bare_names and raw:
            return _function(raw)
    elif isinstance(raw, Mapping):
        if raw.get("type") == "allowed_tools":
            return _allowed_tools(raw.get("allowed_tools"))
        name = _function_name(raw) if raw.get("type") == "function" else None
        if name:
            return _function(name)
    raise ValueError(EXPECTED)


def _function(name: str) -> common_pb2.ToolChoice:
    return common_pb2.ToolChoice(mode=common_pb2.TOOL_CHOICE_MODE_FUNCTION, function_name=name)


def _function_name(tool: Mapping[str, object]) -> str | None:
    """The name in {"type": "function", "function": {"name": ...}} (None where not a string)."""
    fn = tool.get("function")
    name = fn.get("name") if isinstance(fn, Mapping) else None
    return name if isinstance(name, str) else None


def _allowed_tools(raw: object) -> common_pb2.ToolChoice:
    mode = raw.get("mode") if isinstance(raw, Mapping) else None
    tools = raw.get("tools") if isinstance(raw, Mapping) else None
    names = [_function_name(t) if isinstance(t, Mapping) and t.get("type") == "function"
             else None for t in tools] if isinstance(tools, list) else []
    if mode not in ("auto", "required") or not names or not all(names):
        raise ValueError(ALLOWED_EXPECTED)
    return common_pb2.ToolChoice(mode=_MODES[str(mode)],
                                 allowed_tools=[n for n in names if n is not None])
