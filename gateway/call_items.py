"""What a call through the gateway yields as it runs (Granted, Delta, then its CallResult),
how it fails (CallFailed: the gRPC status the front ends return), and the program a call's
admission may register (NewProgram). Shared by gateway/execution.py and both front ends."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from ostinato.program_ids import client_text
from ostinato.v1 import common_pb2, planner_pb2
from planner.admit_stream import FINAL


class CallFailed(Exception):
    """A failure with the gRPC status to return (the HTTP API maps it) and, for bad input,
    the request field at fault."""

    def __init__(self, code: grpc.StatusCode, message: str, param: str | None = None,
                 retry_after_s: float | None = None, error_code: str | None = None, *,
                 final: bool = False, retried: bool = False) -> None:
        super().__init__(message)
        # no retry of the same request can succeed (it is over a limit as it is, or conflicts
        # with what exists): the HTTP API says so (x-should-retry: false) to clients that
        # retry refusals on their own (the openai SDK's 409s and 429s)
        self.final = final
        # the gateway has already retried it for as long as a client's automatic retries
        # would (no planner answered for ostinato/retry.py's PLANNER_WAIT_S): the front ends
        # tell those retriers not to (gRPC `grpc-retry-pushback-ms: -1`, HTTP
        # `x-should-retry: false`), leaving Retry-After to the application; each automatic
        # retry would wait as long again (the SDK's Call: 3 attempts, 90 s)
        self.retried = retried
        self.code = code
        self.message = message
        self.param = param
        self.error_code = error_code  # OpenAI's error code (context_length_exceeded ...)
        self.retry_after_s = retry_after_s  # RESOURCE_EXHAUSTED: when a retry would fit
        self.metered: bool | None = None  # set by the executor: the request took its quota

    def with_message(self, message: str) -> CallFailed:
        """The same failure (status, field, retry advice) saying `message` instead."""
        return CallFailed(self.code, message, self.param, self.retry_after_s, self.error_code,
                          final=self.final, retried=self.retried)


# When a refusal for load (the planner's queue, a tenant's waiting calls or open programs)
# may be retried: it names no time of its own, and a client must not retry at once.
RETRY_LOAD_AFTER_S = 1.0
RETRY_PLANNER_AFTER_S = 5.0  # no planner serving: about a failover's time


def planner_failure(exc: grpc.aio.AioRpcError, tenant: str) -> CallFailed:
    """A planner RPC's failure as `tenant`'s client gets it: its status and message (the
    programs it names by the client's ids), and a refusal for load says when to retry
    (gRPC trailer retry-after-ms, HTTP Retry-After)."""
    code = exc.code()
    if code == grpc.StatusCode.UNAVAILABLE:  # no planner answered (its transport's text names
        # the mesh's inner addresses: not the client's to read)
        return CallFailed(code, "no planner is serving the mesh (a failover, a restart, or "
                          "its Redis out of reach): retry later", None, RETRY_PLANNER_AFTER_S,
                          retried=True)
    # (a program past its deadline: no retry can be served, the client is told not to)
    final = any(key == FINAL for key, _ in exc.trailing_metadata() or ())
    return CallFailed(code, client_text(tenant, exc.details() or "planner error"), None,
                      RETRY_LOAD_AFTER_S if code == grpc.StatusCode.RESOURCE_EXHAUSTED else None,
                      final=final)


# what an engine's refusal of a constraint names (SGLang's sampling_params.json_schema, its
# grammar backends' compile errors)
_CONSTRAINT_WORDS = ("schema", "grammar")


def engine_refusal(message: str, call: common_pb2.CallSpec) -> CallFailed:
    """A worker's INVALID_ARGUMENT (its engine refused the request: a schema it cannot
    compile, a prompt too long) as the client gets it: the engine's words without the
    worker that said them (the mesh's inside is not the client's to read); a refusal of a
    schema or grammar names the field that gave it: the tools' schemas (a forced call),
    else the response format's."""
    _, said, detail = message.partition("engine answered ")
    text = detail.partition(": ")[2] if said else message.partition(": ")[2]
    param = None
    if any(word in text.lower() for word in _CONSTRAINT_WORDS):
        forced = call.tool_choice.mode in (common_pb2.TOOL_CHOICE_MODE_REQUIRED,
                                           common_pb2.TOOL_CHOICE_MODE_FUNCTION)
        param = ("tools" if call.tools and forced
                 else "response_format" if call.HasField("response_format")
                 else "tools" if call.tools else None)
    return CallFailed(grpc.StatusCode.INVALID_ARGUMENT,
                      f"the model server refused the request: {text or message}", param)


@dataclass(frozen=True)
class Delta:
    text: str
    cache_hit: int = common_pb2.CACHE_HIT_MISS  # set when the text comes from the answer cache
    # The call starts over on another worker: the text of earlier deltas is void, and this
    # delta's text begins the new answer (CallSpec.restart_on_failure).
    restart: bool = False
    # The call's last text: its CallResult follows at once, so a front end may send both in
    # one message (a CallChunk with delta and result; one HTTP write).
    last: bool = False
    # A reasoning model's thinking that came with this piece (before any of `text`).
    reasoning: str = ""


@dataclass(frozen=True)
class Granted:
    """The call left the planner's queue for `worker_id` ("" when answered from a cache);
    `early`: whether it had started there ahead of the grant ("confirmed"), or elsewhere
    ("missed": that run is cut) (gateway/early_guess.py); "": it had not."""

    worker_id: str
    early: str = ""


CallItem = Granted | Delta | common_pb2.CallResult


@dataclass(frozen=True)
class NewProgram:
    """A program that a call's admission registers at the planner (one round trip, not
    RegisterProgram then Admit)."""

    options: common_pb2.ProgramOptions  # program_id set
    max_open: int = 0  # the tenant's limit on programs open at once (0: none)
    one_call: bool = False  # the planner ends it once the call is done or cancelled

    def into(self, admit: planner_pb2.AdmitRequest) -> None:
        admit.register_program.CopyFrom(self.options)
        admit.max_open_programs = self.max_open
        admit.end_program_after = self.one_call
