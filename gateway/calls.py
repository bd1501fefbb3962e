"""Validating calls: pure functions over protos, no I/O. Errors name the field at fault."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from gateway.prompts import BadTemplateKwargs, ConflictingDefinitions, constraint, template_kwargs
from ostinato import strict_json
from ostinato.deadlines import deadline_seconds
from ostinato.program_ids import id_problem
from ostinato.v1 import common_pb2

ROLES = ("system", "user", "assistant", "tool")
LOGIT_BIAS_LIMIT = 100.0  # OpenAI's range for a logit_bias value: [-100, 100]
LOGIT_BIAS_MAX_ENTRIES = 300  # token ids one call may bias


CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"  # OpenAI's error code


class InvalidCall(ValueError):
    error_code: str | None = None  # OpenAI's error code, where it has one for the fault

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param  # the request field at fault, for OpenAI's error shape


class PromptTooLarge(InvalidCall):
    """Past gateway.max_prompt_chars: OpenAI's code for a prompt too long, so that a client
    trimming its history on it does here too (API review 2026-12-07: the code was null)."""

    error_code = CONTEXT_LENGTH_EXCEEDED


@dataclass(frozen=True)
class CallLimits:
    max_prompt_chars: int
    max_messages: int
    default_max_new_tokens: int
    max_new_tokens_limit: int


MAX_SCHEMA_DEPTH = 64  # nested objects and arrays in a JSON schema (a real one uses under 20)
FLOAT32_TINY = 1.1754943508222875e-38  # the smallest normal float32
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # OpenAI's rule for function names
_MODE = common_pb2.ToolChoiceMode
_FORMAT = common_pb2.ResponseFormatType


def nesting_depth(value: object) -> int:
    """How deeply JSON objects and arrays nest in a decoded value (a scalar: 0), without
    recursion, so that no depth makes it fail."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def _json_schema(text: str, where: str) -> None:
    try:
        schema = strict_json.loads(text)
    except RecursionError as exc:
        raise InvalidCall(f"{where} nests too deeply (at most {MAX_SCHEMA_DEPTH} levels)", where) from exc
    except (json.JSONDecodeError, strict_json.NotJson) as exc:
        raise InvalidCall(f"{where} is not valid JSON: {exc}", where) from exc
    if not isinstance(schema, dict):
        raise InvalidCall(f"{where} must be a JSON object (a JSON schema)", where)
    if (depth := nesting_depth(schema)) > MAX_SCHEMA_DEPTH:
        raise InvalidCall(f"{where} nests {depth} levels deep, more than the {MAX_SCHEMA_DEPTH} "
                          "allowed", where)
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        path = "/".join(str(p) for p in exc.path)
        raise InvalidCall(f"{where} is not a valid JSON schema: {exc.message}"
                          + (f" (at {path})" if path else ""), where) from exc


def _check_tools(call: common_pb2.CallSpec) -> None:
    names: set[str] = set()
    for i, tool in enumerate(call.tools):
        if not _NAME.fullmatch(tool.name):  # (match's $ takes a trailing newline)
            raise InvalidCall(f"tools[{i}].function.name must be 1 to 64 letters, digits, _ or -, "
                              f"got {tool.name!r}", "tools")
        if tool.name in names:
            raise InvalidCall(f"tools[{i}].function.name {tool.name!r} is declared twice", "tools")
        names.add(tool.name)
        if tool.parameters_json:
            where = f"tools[{i}].function.parameters"
            _json_schema(tool.parameters_json, where)
            if json.loads(tool.parameters_json).get("type", "object") not in ("object", ["object"]):
                raise InvalidCall(f"{where} must describe a JSON object (\"type\": \"object\"): "
                                  "a call's arguments are one", where)
    choice = call.tool_choice
    if choice.mode in (_MODE.TOOL_CHOICE_MODE_REQUIRED, _MODE.TOOL_CHOICE_MODE_FUNCTION) \
            and not call.tools:
        raise InvalidCall("tool_choice requires tools", "tool_choice")
    if choice.mode == _MODE.TOOL_CHOICE_MODE_FUNCTION and choice.function_name not in names:
        raise InvalidCall(f"tool_choice names {choice.function_name!r}, which is not among the "
                          "tools", "tool_choice")
    _check_allowed(choice, names)
    # A forced call with a response_format, as OpenAI takes it (the Agents SDK sends both for
    # an agent with an output type): this answer is the call, constrained to it; the format
    # is for a later text answer (gateway/prompts.py constraint(); SGLang refuses the pair).
    if choice.mode in (_MODE.TOOL_CHOICE_MODE_REQUIRED, _MODE.TOOL_CHOICE_MODE_FUNCTION):
        try:
            constraint(call)
        except ConflictingDefinitions as exc:
            raise InvalidCall(str(exc), "tools") from exc


def _check_allowed(choice: common_pb2.ToolChoice, names: set[str]) -> None:
    """OpenAI's allowed_tools: with tool_choice auto (or unset, auto with tools) or required,
    names of the tools (one named twice is one)."""
    allowed = list(choice.allowed_tools)
    if not allowed:
        return
    if choice.mode not in (_MODE.TOOL_CHOICE_MODE_UNSPECIFIED, _MODE.TOOL_CHOICE_MODE_AUTO,
                           _MODE.TOOL_CHOICE_MODE_REQUIRED):
        raise InvalidCall("tool_choice.allowed_tools goes with mode auto or required",
                          "tool_choice")
    if unknown := [n for n in allowed if n not in names]:
        raise InvalidCall(f"tool_choice.allowed_tools names {unknown[0]!r}, which is not among "
                          "the tools", "tool_choice")


def _check_messages(call: common_pb2.CallSpec) -> None:
    called: set[str] = set()  # the ids of the tool calls so far
    unanswered: dict[str, int] = {}  # of them, those with no result yet -> their message
    for i, m in enumerate(call.messages):
        if m.role == "tool" and m.tool_call_id and m.tool_call_id not in called:
            # as OpenAI refuses it (SGLang would render it): a result for no call of the model's
            raise InvalidCall(f"messages[{i}].tool_call_id {m.tool_call_id!r} answers no tool call "
                              "of an earlier assistant message", "messages")
        if m.role == "tool":  # (one naming no call answers the earliest unanswered)
            unanswered.pop(m.tool_call_id or next(iter(unanswered), ""), None)
        else:
            _check_answered(unanswered)
        called.update(tc.id for tc in m.tool_calls if tc.id)
        unanswered.update((tc.id, i) for tc in m.tool_calls if tc.id)
        if m.role not in ROLES:
            raise InvalidCall(f"messages[{i}].role must be one of {', '.join(ROLES)}, got {m.role!r}",
                              "messages")
        if m.tool_calls and m.role != "assistant":
            raise InvalidCall(f"messages[{i}]: only assistant messages carry tool_calls", "messages")
        for j, tc in enumerate(m.tool_calls):
            where = f"messages[{i}].tool_calls[{j}]"
            if not tc.name:
                raise InvalidCall(f"{where}.function.name is required", "messages")
            # arguments that are not a JSON object are served, as OpenAI serves them: a model
            # that once wrote a malformed call must not make its conversation unservable on
            # every later turn (the template gets the text as it is: gateway/prompts.py)
    _check_answered(unanswered)


def _check_answered(unanswered: dict[str, int]) -> None:
    """As OpenAI refuses it: an assistant message's tool calls are each answered by a tool
    message before the conversation goes on (a walkthrough found a missing one served)."""
    if unanswered:
        at = min(unanswered.values())
        raise InvalidCall(f"messages[{at}]: an assistant message with 'tool_calls' must be "
                          "followed by tool messages responding to each 'tool_call_id'; "
                          f"none for {', '.join(sorted(unanswered))}", "messages")


def _check_sampling(call: common_pb2.CallSpec, limits: CallLimits) -> None:
    sp = call.sampling
    if sp.HasField("max_new_tokens") and sp.max_new_tokens > limits.max_new_tokens_limit:
        raise InvalidCall(
            f"max tokens {sp.max_new_tokens} is over this gateway's limit of "
            f"{limits.max_new_tokens_limit} (sampling.max_new_tokens; max_tokens, "
            "max_completion_tokens or max_output_tokens over HTTP; the operator sets the "
            "limit: gateway.max_new_tokens_limit)", "max_tokens")
    if sp.HasField("max_new_tokens") and sp.max_new_tokens < 1:  # as max_tokens over HTTP
        raise InvalidCall("max tokens must be at least 1 (sampling.max_new_tokens; leave it unset "
                          f"for the default, {limits.default_max_new_tokens})", "max_tokens")
    if sp.HasField("temperature") and not 0.0 <= sp.temperature <= 2.0:
        raise InvalidCall("sampling.temperature must be in [0, 2]", "temperature")
    if sp.HasField("top_p") and not 0.0 <= sp.top_p <= 1.0:
        raise InvalidCall("sampling.top_p must be in [0, 1]", "top_p")
    if sp.HasField("top_k") and not (sp.top_k == -1 or sp.top_k >= 1):
        raise InvalidCall("sampling.top_k must be -1 (the whole vocabulary) or at least 1",
                          "top_k")
    if sp.HasField("min_p") and not 0.0 <= sp.min_p <= 1.0:
        raise InvalidCall("sampling.min_p must be in [0, 1]", "min_p")
    if sp.HasField("repetition_penalty") and not 0.0 < sp.repetition_penalty <= 2.0:
        raise InvalidCall("sampling.repetition_penalty must be in (0, 2] (1: none)",
                          "repetition_penalty")
    for name in ("presence_penalty", "frequency_penalty"):
        if sp.HasField(name) and not -2.0 <= getattr(sp, name) <= 2.0:
            raise InvalidCall(f"sampling.{name} must be in [-2, 2]", name)
    if len(sp.logit_bias) > LOGIT_BIAS_MAX_ENTRIES:
        raise InvalidCall(f"sampling.logit_bias biases {len(sp.logit_bias)} token ids, more than "
                          f"{LOGIT_BIAS_MAX_ENTRIES}", "logit_bias")
    for token_id, bias in sp.logit_bias.items():
        if not -LOGIT_BIAS_LIMIT <= bias <= LOGIT_BIAS_LIMIT:
            raise InvalidCall(f"sampling.logit_bias[{token_id}] is {bias}; a bias must be in "
                              "[-100, 100]", "logit_bias")
    if sp.HasField("n") and sp.n != 1:
        raise InvalidCall("sampling.n must be 1 for program calls", "n")
    if call.top_logprobs > 20:
        raise InvalidCall("top_logprobs must be at most 20", "top_logprobs")
    if call.top_logprobs and not call.logprobs:
        raise InvalidCall("top_logprobs needs logprobs", "top_logprobs")


# Control characters (C0, DEL, C1), which no id or label may hold, as the OpenAPI document
# says: ids a client names (no '/' either) and labels (gateway/openapi.py)
ID_PATTERN = "^[^/\\u0000-\\u001f\\u007f-\\u009f]*$"
LABEL_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"


def _checked_id(value: str, name: str, param: str, *, slash: bool = True) -> None:
    """A client's id or label (ostinato/program_ids.py id_problem); raises InvalidCall."""
    problem = id_problem(value, name, slash=slash)
    if problem:
        raise InvalidCall(problem, param)


def check_program_id(program_id: str) -> None:
    """A program id as a client names it; raises InvalidCall."""
    _checked_id(program_id, "program_id", "program_id")


def check_program_options(options: common_pb2.ProgramOptions) -> None:
    """A program's options as a client sends them; raises InvalidCall."""
    check_program_id(options.program_id)
    _checked_id(options.program_class, "program_class", "program_class", slash=False)
    if options.HasField("deadline"):
        try:
            deadline_seconds(options.deadline)
        except ValueError as exc:
            raise InvalidCall(str(exc), "deadline_s") from None


def prompt_chars(call: common_pb2.CallSpec) -> int:
    """The text the chat template renders, tool calls and the declared tools' schemas
    included: what max_prompt_chars bounds (tools were left out once, and a huge schema cost
    the gateway its render and tokenize unbounded: session 69's leftover)."""
    return len(call.prompt) + sum(
        len(m.content) + sum(len(c.name) + len(c.arguments) for c in m.tool_calls)
        for m in call.messages) + sum(
        len(t.name) + len(t.description) + len(t.parameters_json) for t in call.tools)


def normalize_call(call: common_pb2.CallSpec, limits: CallLimits) -> common_pb2.CallSpec:
    """Checks a call and returns a copy with defaults filled in; raises InvalidCall."""
    if not call.messages and not call.prompt:
        raise InvalidCall("a call needs messages or a prompt", "messages")
    if call.messages and call.prompt:
        raise InvalidCall("give either messages or a prompt, not both", "messages")
    if len(call.messages) > limits.max_messages:
        raise InvalidCall(f"too many messages: {len(call.messages)} > {limits.max_messages}",
                          "messages")
    _check_messages(call)
    for field, value, enum in (  # protobuf keeps numbers no enum value has: refused here
            ("tool_choice.mode", call.tool_choice.mode, common_pb2.ToolChoiceMode),
            ("response_format.type", call.response_format.type, _FORMAT)):
        if value not in enum.values():
            raise InvalidCall(f"{field} {value} is not a {enum.DESCRIPTOR.name}",
                              field.partition(".")[0])
    _check_tools(call)
    if call.response_format.type == _FORMAT.RESPONSE_FORMAT_TYPE_JSON_SCHEMA:
        _json_schema(call.response_format.schema_json, "response_format.json_schema.schema")
    size = prompt_chars(call)
    if size > limits.max_prompt_chars:
        raise PromptTooLarge(f"prompt too large: {size} characters > {limits.max_prompt_chars} "
                             "(the gateway's limit, gateway.max_prompt_chars)", "messages")
    _checked_id(call.call_id, "call_id", "ostinato")
    _checked_id(call.thread_id, "thread_id", "ostinato", slash=False)
    for parent in call.parent_call_ids:
        _checked_id(parent, "parent_call_ids", "ostinato", slash=False)
    if not all(call.parent_call_ids):
        raise InvalidCall("parent_call_ids holds an empty id", "ostinato")
    if call.call_id in call.parent_call_ids:
        raise InvalidCall("a call cannot be its own parent", "ostinato")
    _check_sampling(call, limits)
    for name, given in (("chat_template_kwargs", call.chat_template_kwargs),
                        ("reasoning_effort", call.reasoning_effort),
                        ("reasoning_in_text", call.reasoning_in_text)):
        if given and call.prompt:
            raise InvalidCall(f"{name} applies to messages, not to a raw prompt", name)
    try:
        template_kwargs(call)
    except BadTemplateKwargs as exc:
        raise InvalidCall(str(exc), exc.field) from None
    out = common_pb2.CallSpec()
    out.CopyFrom(call)
    if not out.call_id:
        out.call_id = uuid.uuid4().hex[:16]
    if not out.thread_id:
        out.thread_id = "main"
    if out.sampling.HasField("top_p") and out.sampling.top_p == 0.0:  # OpenAI's 0, the
        out.sampling.top_p = FLOAT32_TINY  # likeliest token only: SGLang's least nucleus
    # max_new_tokens stays unset when not given: the default, cut to what the model's context
    # window leaves, is set once the prompt is tokenized (gateway/context_window.py)
    most = out.sampling.max_new_tokens if out.sampling.HasField("max_new_tokens") else \
        limits.default_max_new_tokens
    if out.sampling.min_new_tokens > most:
        raise InvalidCall(f"min tokens {out.sampling.min_new_tokens} is more than max tokens "
                          f"{most} (sampling.min_new_tokens; min_tokens over HTTP)", "min_tokens")
    return out
