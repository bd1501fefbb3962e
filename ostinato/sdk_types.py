"""What the SDK sends: the requests it builds, and the gRPC retry policy of its channel (used
by ostinato.AsyncClient, which ostinato.Client drives). What it returns: ostinato/sdk_results.py."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypedDict, Unpack

from google.protobuf import duration_pb2

from ostinato.deadlines import MAX_DEADLINE_S
from ostinato.program_ids import id_problem
from ostinato.sdk_results import CallOutput
from ostinato.seeds import proto_seed
from ostinato.tool_choice import tool_choice
from ostinato.v1 import common_pb2

# ---- retries through a gateway restart (shared by Client and AsyncClient) ---------------
#
# gRPC's own retry policy, as the channel's service config:
# - Every method waits for the gateway to be reachable before it is sent (wait-for-ready),
#   within its deadline, so an operation made while the gateway restarts goes through
#   once it is back.
# - StartProgram, EndProgram and CacheStats are idempotent: the SDK names every program
#   (a uuid when the caller gives no id), so a StartProgram sent twice opens one program,
#   and the planner answers an EndProgram repeated after its answer was lost with the
#   same summary. They are retried on UNAVAILABLE with exponential backoff, and have a
#   default deadline of UNARY_DEADLINE_S when the client sets none (given with each RPC,
#   not here: gRPC would take the shorter of the two, and cut a client's longer one).
# - A Call is retried on UNAVAILABLE only while the gateway has sent nothing back (gRPC
#   retries a stream until its first response). Once text has streamed, a failure is the
#   caller's to handle. The SDK names every call (a uuid), so a retried Call is the same
#   call to the planner: it runs as the call's next attempt once the first is cancelled
#   (the planner cancels it when the gateway that admitted it goes away), and a summary
#   counts it once. CallWhole (a call answered in one message) is retried so too: nothing
#   has come back before its one response.
# RunProgram is not retried (a second one would run the DAG again); it waits for ready.
GATEWAY_SERVICE = "ostinato.v1.Gateway"
UNARY_DEADLINE_S = 60.0
_BACKOFF = {"initialBackoff": "0.2s", "maxBackoff": "2s", "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"]}
SERVICE_CONFIG: dict[str, Any] = {"methodConfig": [
    {"name": [{"service": GATEWAY_SERVICE, "method": m}
              for m in ("StartProgram", "EndProgram", "CacheStats")],
     "waitForReady": True, "retryPolicy": {"maxAttempts": 5, **_BACKOFF}},
    {"name": [{"service": GATEWAY_SERVICE, "method": m} for m in ("Call", "CallWhole")],
     "waitForReady": True, "retryPolicy": {"maxAttempts": 3, **_BACKOFF}},
    {"name": [{"service": GATEWAY_SERVICE, "method": "RunProgram"}], "waitForReady": True},
]}
# The channel's options: the policy above, and a gateway that is back is dialled again
# within 2 s (gRPC's reconnect backoff grows to 120 s by default).
CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.enable_retries", 1),
    ("grpc.service_config", json.dumps(SERVICE_CONFIG)),
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
)


def new_id(length: int = 16) -> str:
    """A program or call id the SDK names, so that a retried request is recognized."""
    return uuid.uuid4().hex[:length]


MessageLike = Mapping[str, Any] | tuple[str, str]
ToolLike = Mapping[str, Any]  # OpenAI's {"type": "function", "function": {...}}, or its inner part

_CACHE_MODES = {
    None: common_pb2.CACHE_MODE_UNSPECIFIED, "off": common_pb2.CACHE_MODE_OFF,
    "exact": common_pb2.CACHE_MODE_EXACT, "semantic": common_pb2.CACHE_MODE_SEMANTIC,
}


def _strings(name: str, value: str | Iterable[str] | None) -> list[str]:
    """A list of strings from one string (OpenAI's `stop="END"` too) or several; a
    ValueError naming the argument for anything else (a string is no list of characters)."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value) if isinstance(value, Iterable) \
        else [value]
    if not all(isinstance(item, str) for item in items):
        raise ValueError(f"{name} must be a string or a list of strings, got {value!r}")
    return items


def _content(content: Any) -> str:
    """A message's content: a string, or OpenAI's list of text parts (joined)."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, Sequence) and all(
            isinstance(part, Mapping) and part.get("type") == "text"
            and isinstance(part.get("text"), str) for part in content):
        return "".join(part["text"] for part in content)
    raise ValueError("a message's content must be a string or a list of text parts "
                     f"({{'type': 'text', 'text': ...}}), got {content!r}")


def _messages(messages: Sequence[MessageLike] | None) -> list[common_pb2.Message]:
    if isinstance(messages, str | bytes) or not isinstance(messages, Sequence | type(None)):
        raise ValueError("messages must be a list of {'role', 'content'} dicts or (role, "
                         f"content) pairs, got {messages!r}")
    return [_message(m) for m in messages or ()]


def _message(m: MessageLike) -> common_pb2.Message:
    if isinstance(m, tuple) and len(m) == 2 and all(isinstance(x, str) for x in m):
        role, content = m
        return common_pb2.Message(role=role, content=content)
    if not isinstance(m, Mapping):
        raise ValueError("a message must be a {'role', 'content'} dict or a (role, content) "
                         f"pair of strings, got {m!r}")
    calls = []
    for c in m.get("tool_calls") or ():
        fn = c.get("function", c)
        args = fn.get("arguments", "{}")
        calls.append(common_pb2.ToolCall(id=c.get("id", ""), name=fn.get("name", ""),
                                         arguments=args if isinstance(args, str) else json.dumps(args)))
    return common_pb2.Message(role=m.get("role", ""), content=_content(m.get("content")),
                              name=m.get("name", ""), tool_call_id=m.get("tool_call_id", ""),
                              tool_calls=calls)


def _tool(t: ToolLike) -> common_pb2.Tool:
    fn = t.get("function", t)
    params = fn.get("parameters")
    return common_pb2.Tool(name=fn.get("name", ""), description=fn.get("description", ""),
                           parameters_json=json.dumps(params) if params is not None else "",
                           strict=bool(fn.get("strict", False)))


def _response_format(schema: Mapping[str, Any] | None, json_object: bool) -> common_pb2.ResponseFormat:
    if schema is not None:
        return common_pb2.ResponseFormat(type=common_pb2.RESPONSE_FORMAT_TYPE_JSON_SCHEMA,
                                         schema_json=json.dumps(schema))
    if json_object:
        return common_pb2.ResponseFormat(type=common_pb2.RESPONSE_FORMAT_TYPE_JSON_OBJECT)
    return common_pb2.ResponseFormat()


def _check_keys(what: str, given: Mapping[str, object], known: frozenset[str]) -> None:
    """Unpack[TypedDict] is checked by type checkers only: a misspelt argument is an error."""
    unknown = sorted(set(given) - known)
    if unknown:
        raise TypeError(f"{what} takes no argument {', '.join(unknown)} (it takes "
                        f"{', '.join(sorted(known))})")


class ProgramArgs(TypedDict, total=False):
    """A program's options: `client.program(**options)`, `client.run(graph, **options)`."""

    program_id: str | None  # None: the SDK names it (a retried StartProgram opens one program)
    deadline_s: float | None  # the program's deadline from its start
    program_class: str  # a label for metrics and policies (react, mapreduce ...)
    reject_when_late: bool  # refuse calls once the deadline cannot be met
    labels: Mapping[str, str] | None


def program_options(**options: Unpack[ProgramArgs]) -> common_pb2.ProgramOptions:
    _check_keys("a program", options, ProgramArgs.__optional_keys__)
    labels = dict(options.get("labels") or {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise ValueError(f"labels must map strings to strings, got {labels!r}")
    opts = common_pb2.ProgramOptions(program_id=_id("program_id", options.get("program_id"))
                                     or new_id(32),
                                     program_class=_id("program_class",
                                                       options.get("program_class"), slash=False),
                                     reject_when_late=_flag("reject_when_late",
                                                            options.get("reject_when_late", False)),
                                     labels=labels)
    deadline_s = options.get("deadline_s")
    if deadline_s is not None:
        positive_seconds("deadline_s", deadline_s)
        carry, nanos = divmod(round((deadline_s - int(deadline_s)) * 1e9), 1_000_000_000)
        seconds = int(deadline_s) + carry
        if not seconds:  # under a microsecond is one (the planner's resolution): never none
            nanos = max(nanos, 1_000)
        opts.deadline.CopyFrom(duration_pb2.Duration(seconds=seconds, nanos=nanos))
    return opts


class CallArgs(TypedDict, total=False):
    """What a call asks of the model: `program.call(**args)`, `Graph.call(**args)`."""

    messages: Sequence[MessageLike]  # {"role", "content", ...} dicts (OpenAI's) or (role, content)
    prompt: str  # a raw prompt instead of messages
    max_tokens: int
    temperature: float
    top_p: float
    stop: str | Sequence[str]
    seed: int
    logit_bias: Mapping[int, float]  # token id (the model's tokenizer) -> bias in [-100, 100]
    presence_penalty: float  # [-2, 2]
    frequency_penalty: float  # [-2, 2]
    top_k: int  # SGLang's: -1 (the whole vocabulary) or at least 1
    min_p: float  # SGLang's: [0, 1]
    repetition_penalty: float  # SGLang's: (0, 2], 1 is none
    min_tokens: int  # SGLang's: no end of sequence before this many tokens
    chat_template_kwargs: Mapping[str, Any]  # the chat template's variables: {"enable_thinking": False}
    reasoning_effort: str  # a reasoning model's: none, minimal, low, medium, high, xhigh, max
    reasoning_in_text: bool  # keep the thinking in the text (SGLang's separate_reasoning false)
    cache: str | None  # off | exact | semantic (None: the gateway's default)
    semantic_threshold: float  # a semantic hit's minimum similarity (0: the gateway's)
    expected_output_tokens: int  # a scheduling hint
    tags: str | Sequence[str]
    model: str
    ignore_eos: bool
    tools: Sequence[ToolLike]
    tool_choice: str | Mapping[str, Any] | None  # auto | none | required | a tool's name
    json_schema: Mapping[str, Any] | None  # structured output: an instance of this schema
    json_object: bool  # structured output: any JSON object
    parallel_tool_calls: bool | None  # False: at most one tool call per answer (None: the default, True)
    logprobs: bool  # each output token's log probability, in CallOutput.logprobs
    top_logprobs: int  # with logprobs: this many most likely alternatives per token (0 to 20)
    restart_on_failure: bool  # see ostinato.client.CallStream


class PlacedCallArgs(CallArgs, total=False):
    """A call of an interactive program: what it asks (CallArgs) and where it goes."""

    call_id: str | None  # None: the SDK names it (a retried Call is the same call)
    thread_id: str | None  # its branch of the program (default "main")
    # what it depends on: one call or several (None: its thread's last call)
    parents: str | CallOutput | Sequence[str | CallOutput] | None


def _unsigned(name: str, value: int, bits: int, least: int = 0, most: int | None = None) -> int:
    """An unsigned proto field's value, or a ValueError naming the argument (the proto's own
    error names neither); `least` and `most` as the gateway's rule for it."""
    top = (1 << bits) - 1 if most is None else most
    if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= top:
        raise ValueError(f"{name} must be a whole number from {least} to {top}, got {value!r}")
    return value


def _number(name: str, value: float) -> float:
    """A float proto field's value, or a ValueError naming the argument (the proto's own
    TypeError names neither)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {value!r}")
    return value


def _text(name: str, value: str | None) -> str:
    """A string proto field's value ("" for None), or a ValueError naming the argument (the
    proto's own TypeError names neither)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {value!r}")
    return value


def _id(name: str, value: str | None, *, slash: bool = True) -> str:
    """An id or label as `_text`, refused (ValueError) where the gateway would refuse it
    (ostinato/program_ids.py), before anything is sent."""
    text = _text(name, value)
    problem = id_problem(text, name, slash=slash)
    if problem:
        raise ValueError(f"{problem}, got {text[:40]!r}")
    return text


def _template_kwargs(value: Mapping[str, Any] | None) -> str:
    """chat_template_kwargs as the JSON object the gateway takes ("" for none)."""
    if not value:
        return ""
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"chat_template_kwargs must map strings to values, got {value!r}")
    try:
        return json.dumps(dict(value), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"chat_template_kwargs must hold JSON values only: {exc}") from None


def positive_seconds(name: str, value: float) -> float:
    """A deadline or timeout: seconds above 0, at most the gateway's limit (a year); a
    ValueError naming the argument otherwise (a client's timeout_s of 0 made every operation
    DEADLINE_EXCEEDED, a string failed inside gRPC at the first call)."""
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not 0 < value <= MAX_DEADLINE_S:  # (NaN is refused: no comparison holds)
        raise ValueError(f"{name} must be a number of seconds above 0 (at most "
                         f"{MAX_DEADLINE_S}, a year: the gateway's limit), got {value!r}")
    return value


def _flag(name: str, value: bool) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def call_spec(*, call_id: str | None = None, thread_id: str | None = None,
              parents: Iterable[str] = (), **args: Unpack[CallArgs]) -> common_pb2.CallSpec:
    _check_keys("a call", args, CallArgs.__optional_keys__)
    cache = args.get("cache")
    if cache not in _CACHE_MODES:
        raise ValueError(f"cache must be one of off, exact, semantic; got {cache!r}")
    sampling = common_pb2.SamplingParams(stop=_strings("stop", args.get("stop")),
                                         ignore_eos=args.get("ignore_eos", False))
    if "max_tokens" in args:  # (the gateway refuses 0: leave it unset for its default)
        sampling.max_new_tokens = _unsigned("max_tokens", args["max_tokens"], 32, least=1)
    for name in ("temperature", "top_p", "presence_penalty", "frequency_penalty", "min_p",
                 "repetition_penalty"):
        if name in args:
            setattr(sampling, name, _number(name, args[name]))
    if "top_k" in args:
        if isinstance(args["top_k"], bool) or not isinstance(args["top_k"], int) or not (
                -1 <= args["top_k"] < 1 << 31):
            raise ValueError(f"top_k must be -1 or a whole number from 1, got {args['top_k']!r}")
        sampling.top_k = args["top_k"]
    if "min_tokens" in args:
        sampling.min_new_tokens = _unsigned("min_tokens", args["min_tokens"], 32)
    if "seed" in args:
        sampling.seed = proto_seed(args["seed"])
    for token_id, bias in (args.get("logit_bias") or {}).items():
        if isinstance(bias, bool) or not isinstance(bias, int | float):
            raise ValueError(f"logit_bias[{token_id!r}] must be a number, got {bias!r}")
        sampling.logit_bias[_unsigned("a logit_bias token id", token_id, 64)] = bias
    spec = common_pb2.CallSpec(
        call_id=_id("call_id", call_id), thread_id=_id("thread_id", thread_id, slash=False),
        parent_call_ids=list(parents), messages=_messages(args.get("messages")),
        prompt=_text("prompt", args.get("prompt")), sampling=sampling,
        cache=common_pb2.CachePolicy(mode=_CACHE_MODES[cache],
                                     semantic_threshold=_number(
                                         "semantic_threshold", args.get("semantic_threshold", 0.0))),
        hints=common_pb2.CallHints(expected_output_tokens=_unsigned(
            "expected_output_tokens", args.get("expected_output_tokens", 0), 32),
                                   tags=_strings("tags", args.get("tags"))),
        model=_text("model", args.get("model")), tools=[_tool(t) for t in args.get("tools", ())],
        tool_choice=tool_choice(args.get("tool_choice"), bare_names=True),
        response_format=_response_format(args.get("json_schema"), args.get("json_object", False)),
        restart_on_failure=_flag("restart_on_failure", args.get("restart_on_failure", False)),
        chat_template_kwargs=_template_kwargs(args.get("chat_template_kwargs")),
        reasoning_effort=_text("reasoning_effort", args.get("reasoning_effort")),
        reasoning_in_text=_flag("reasoning_in_text", args.get("reasoning_in_text", False)),
        logprobs=_flag("logprobs", args.get("logprobs", False)),
        top_logprobs=_unsigned("top_logprobs", args.get("top_logprobs", 0), 32, most=20),
    )
    parallel = args.get("parallel_tool_calls")
    if parallel is not None:  # (unset: the gateway's default, true)
        spec.parallel_tool_calls = _flag("parallel_tool_calls", parallel)
    return spec


class ThreadTracker:
    """Default dependencies: a call depends on the previous call of its thread."""

    def __init__(self) -> None:
        self._last: dict[str, str] = {}

    def parents(self, thread_id: str | None,
                parents: str | CallOutput | Iterable[str | CallOutput] | None,
                call_id: str = "") -> list[str]:
        """`parents` (ids or the results of earlier calls), else the thread's last call,
        unless that is `call_id` itself: an id used again gets the gateway's ALREADY_EXISTS,
        not a refusal of a call as its own parent."""
        if isinstance(parents, (str, CallOutput)):  # one parent (a str is not its letters)
            parents = [parents]
        if parents is not None:
            return [p if isinstance(p, str) else p.call_id for p in parents]
        last = self._last.get(thread_id or "main")
        return [last] if last and last != call_id else []

    def record(self, thread_id: str | None, call_id: str) -> None:
        self._last[thread_id or "main"] = call_id
