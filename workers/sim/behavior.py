"""What the simulated model decides to answer, read from its prompt like a model would.

- Under constrained decoding (SGLang's ``sampling_params.json_schema``) it answers with a
  valid instance of the schema; for tool_choice "required" or a named function this is
  the JSON array of calls the gateway asked for.
- When the prompt declares tools (workers/sim/chat_template.py) and the last turn is the
  user's, it calls one of the tools, chosen deterministically from the prompt, with
  arguments valid against that tool's parameters, in the configured family's format.
- Otherwise (after a tool result, or without tools) it answers in free text (None here:
  the decoder's word stream).
So agent loops end, and every test exercises the real parsing path. Deterministic: the
same prompt and seed give the same answer.
"""

from __future__ import annotations

import hashlib
import json

from ostinato.tool_formats import ParsedToolCall, render_tool_calls
from workers.sim.chat_template import declared_tools, last_turn_role
from workers.sim.json_instance import instance


def _choice(prompt: str, seed: int) -> int:
    digest = hashlib.blake2b(f"{seed}:{prompt}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def scripted_answer(prompt: str, *, json_schema: str | None, tool_format: str,
                    seed: int = 0) -> str | None:
    """The answer's text, or None for free text. Raises UnsupportedSchema (a ValueError) for a
    schema the simulated model cannot satisfy, and ValueError for one that is not JSON."""
    if json_schema is not None:
        schema = json.loads(json_schema)
        return json.dumps(instance(schema, _choice(prompt, seed)), ensure_ascii=False)
    tools = declared_tools(prompt)
    if not tools or last_turn_role(prompt) != "user":
        return None
    pick = _choice(prompt, seed)
    tool = tools[pick % len(tools)]
    params = tool.get("parameters") or {"type": "object", "properties": {}}
    args = instance(params, pick)
    return render_tool_calls(tool_format, [ParsedToolCall(tool["name"],
                                                          json.dumps(args, ensure_ascii=False))])
