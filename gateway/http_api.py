"""The OpenAI-compatible HTTP API of the gateway (aiohttp), beside its gRPC service.

    POST /v1/chat/completions          chat; tools, structured output, logprobs, n; SSE with
                                       "stream": true (tool calls as OpenAI's deltas)
    POST /v1/completions               a raw prompt, no chat template
    POST /v1/responses                 OpenAI's Responses API (gateway/responses_api.py): input
                                       items, function tools, text.format; SSE events;
                                       previous_response_id continues a stored response
    GET  /v1/responses/{id}            a stored response (the caller's tenant's only)
    GET  /v1/responses/{id}/input_items  the items it was made from (paged)
    DELETE /v1/responses/{id}          forget it
    /v1/conversations[/{id}[/items[/{item_id}]]]  OpenAI's Conversations API: a tenant's
                                       conversations and their items (gateway/conversations_api.py)
    GET  /v1/models                    the served model
    POST /v1/programs                  start a program: {"deadline_s", "program_class", "program_id"}
    POST /v1/programs/{id}/end         end it; returns its summary
    GET  /health
    GET  /openapi.json                 this API's OpenAPI document (gateway/openapi.py)

/health and /openapi.json need no API key; every other route does (unless the gateway allows
anonymous callers). Prometheus metrics are not here: gateway.metrics_port (gateway/main.py).

A request runs in the program named by the `X-Ostinato-Program` header; without one, in the
program whose conversation it continues (cache/conversations.py), else in a new program.
Every response's `ostinato` object names its program_id, call_id and parent_call_ids.
`X-Ostinato-Cache` asks for a cache mode; the response says `X-Ostinato-Cache-Hit`.
Errors use OpenAI's JSON shape with the HTTP status of the gRPC code the same failure gets
on the gRPC API (gateway/http_errors.py). The call path is the gateway core's
(gateway/core.py); this only translates.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import random
import time
import uuid
from collections.abc import Iterator
from typing import Any

import structlog
from aiohttp import web
from google.protobuf.duration_pb2 import Duration
from google.protobuf.json_format import MessageToDict

from cache.conversation_store import ConversationStore
from cache.conversations import Continuation
from cache.fingerprint import deterministic
from cache.modes import REQUEST_HEADER
from cache.stored_responses import StoredResponses
from gateway.chat_stream import ChatStream
from gateway.conversations_api import ConversationsApi, routes
from gateway.core import GatewayCore, Placement
from gateway.draining import DRAINING, Draining, told
from gateway.http_errors import MAX_TOKENS_SENT_AS, HttpError, errors_middleware
from gateway.metrics import GatewayMetrics
from gateway.openai_format import (
    BadRequest,
    call_from_completion,
    call_from_openai,
    choices,
    completion_prompts,
    streams_reasoning,
    wants_stream,
)
from gateway.openai_response import (
    PROGRAM_HEADER,
    answer_headers,
    completion_json,
    model_json,
    models_json,
    text_completion_json,
)
from gateway.openapi import document
from gateway.responses_api import delete, list_input_items, respond, retrieve
from ostinato import strict_json
from ostinato.deadlines import MAX_DEADLINE_S
from ostinato.v1 import common_pb2
from tracing import genai
from tracing.http_middleware import tracing_middleware

log = structlog.get_logger(__name__)

# How long a request's body may take to arrive: a client that sends it a byte at a time, or
# never, held its connection (a socket of the gateway's) for good (overload review
# 2026-12-06: 150 of 150 such connections still open after 150 s). Then 408.
BODY_READ_S = 30.0
_STARTED = int(time.time())
SEED_BITS = 63  # an unseeded n > 1 request's answers past the first: seeds within int64


def _sibling(call: common_pb2.CallSpec, i: int, prompt: str = "") -> common_pb2.CallSpec:
    """Answer i of n: a call of its own beside the first, on its own thread (`prompt`: a
    raw prompt of its own, /v1/completions')."""
    out = common_pb2.CallSpec()
    out.CopyFrom(call)
    if prompt:
        out.prompt = prompt
    out.call_id = f"{call.call_id}.n{i}"
    out.thread_id = f"{call.thread_id}.n{i}"
    # A seed given: answer i gets seed + i (so the n answers differ, and the same request
    # gets the same n again); a uint64 field: a negative seed was sent as seed % 2^64, so i
    # more wraps around too. None given: a random one, an independent sample as the first
    # answer's unseeded one is (a seed of i pinned answer i to the same text on every
    # request: API review 2026-12-07; none at all gave engines that are deterministic
    # unseeded, as the sim engine is, n equal answers); none for greedy decoding, which
    # no seed changes (so its answers stay cacheable: cache/fingerprint.py).
    if call.sampling.HasField("seed"):
        out.sampling.seed = (call.sampling.seed + i) % (1 << 64)
    elif not deterministic(call):
        out.sampling.seed = random.getrandbits(SEED_BITS)
    return out


def summary_json(summary: common_pb2.ProgramSummary) -> dict[str, Any]:
    """POST /v1/programs/{id}/end's answer: the ProgramSummary in protobuf's JSON mapping,
    every field present (the OpenAPI document's ProgramSummary), usage too when unset."""
    full = common_pb2.ProgramSummary()
    full.CopyFrom(summary)
    full.usage.SetInParent()
    return MessageToDict(full, preserving_proto_field_name=True,
                         always_print_fields_with_no_presence=True)


class OpenAiApi:
    def __init__(self, core: GatewayCore, metrics: GatewayMetrics,
                 stored: StoredResponses | None = None,
                 conversations: ConversationStore | None = None) -> None:
        self._core = core
        self._metrics = metrics
        self._stored = stored  # the Responses API's stored responses (None: no Redis)
        self._conversation_store = conversations
        self._conversations = ConversationsApi(conversations, core.config.max_prompt_chars)
        self.draining = Draining()  # the requests in flight, for a stopping gateway

    def app(self) -> web.Application:
        # Room for the largest prompt the gateway accepts (4 bytes a character, JSON escapes).
        app = web.Application(client_max_size=self._core.config.max_prompt_chars * 6 + 1_000_000,
                              middlewares=[tracing_middleware(span_prefix="/v1/"),
                                           errors_middleware(self._metrics),
                                           self.draining.middleware])
        app[DRAINING] = self.draining
        app.add_routes([
            web.post("/v1/chat/completions", self.chat_completions),
            web.post("/v1/completions", self.completions),
            web.post("/v1/responses", self.responses),
            web.get("/v1/responses/{response_id}", self.stored_response),
            web.get("/v1/responses/{response_id}/input_items", self.response_input_items),
            web.delete("/v1/responses/{response_id}", self.delete_response),
            *routes(self._conversations, self._space, self._json),
            web.get("/v1/models", self.models),
            web.get("/v1/models/{model:.+}", self.model),  # ids may hold "/" (sim/llama...)
            web.post("/v1/programs", self.start_program),
            web.post("/v1/programs/{program_id:[^/]+}/end", self.end_program),  # any id but "/"
            web.get("/health", self.health),
            web.get("/openapi.json", self.openapi),
        ])
        return app

    def _space(self, request: web.Request) -> str:
        """The caller's tenant's namespace (name and generation): what its stored responses
        and conversations are kept under, so that a tenant revoked and created again under
        the same name reaches none of the old one's (not even one stored after the revoke
        by a request still running then)."""
        return self._core.namespace(self._tenant(request))

    def _tenant(self, request: web.Request) -> str:
        """The caller's tenant (its key's), bound to the request's log lines as the gRPC
        interceptors bind theirs (tracing/grpc_interceptors.py)."""
        tenant = self._core.tenant([(k.lower(), v) for k, v in request.headers.items()],
                                   openai_client=True)
        structlog.contextvars.bind_contextvars(tenant=tenant)
        return tenant

    @staticmethod
    async def _json(request: web.Request) -> Any:
        try:
            async with asyncio.timeout(BODY_READ_S):
                body = await request.read()
        except TimeoutError:
            raise HttpError(408, f"the request body did not arrive within {BODY_READ_S:g} s",
                            "invalid_request_error") from None
        try:
            return strict_json.loads(body)
        except RecursionError as exc:  # Python's decoder's own bound (about 1,000 levels)
            raise HttpError(400, "the request body nests too deeply", "invalid_request_error") from exc
        except (json.JSONDecodeError, UnicodeDecodeError, strict_json.NotJson) as exc:
            raise HttpError(400, f"the request body is not valid JSON: {exc}",
                            "invalid_request_error") from exc
        except ValueError as exc:  # an integer past Python's 4,300 digits
            raise HttpError(400, f"the request body cannot be read: {exc}",
                            "invalid_request_error") from exc

    async def start_program(self, request: web.Request) -> web.Response:
        tenant = self._tenant(request)
        body = await self._json(request) if request.can_read_body else {}
        if not isinstance(body, dict):
            raise HttpError(400, "the request body must be a JSON object", "invalid_request_error")
        unknown = sorted(set(body) - {"program_id", "program_class", "deadline_s",
                                      "reject_when_late"})
        if unknown:
            raise BadRequest(f"unknown field(s): {', '.join(unknown)}", unknown[0])
        options = common_pb2.ProgramOptions()
        for name in ("program_id", "program_class"):
            if body.get(name) is not None:
                if not isinstance(body[name], str):
                    raise BadRequest(f"{name} must be a string", name)
                setattr(options, name, body[name])
        deadline = body.get("deadline_s")
        if deadline is not None:
            if isinstance(deadline, bool) or not isinstance(deadline, int | float) or not (
                    0 < deadline <= MAX_DEADLINE_S):
                raise BadRequest(f"deadline_s must be a number of seconds in (0, {MAX_DEADLINE_S}]",
                                 "deadline_s")
            options.deadline.CopyFrom(Duration(seconds=int(deadline),
                                               nanos=int((deadline % 1) * 1e9)))
        late = body.get("reject_when_late")
        if late is not None:
            if not isinstance(late, bool):
                raise BadRequest("reject_when_late must be a boolean", "reject_when_late")
            options.reject_when_late = late
        program_id = await self._core.start_program(tenant, options)
        return web.json_response({"program_id": program_id, "tenant": tenant})

    async def end_program(self, request: web.Request) -> web.Response:
        summary = await self._core.end_program(self._tenant(request),
                                               request.match_info["program_id"])
        return web.json_response(summary_json(summary))

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(document(self._core.config))

    async def models(self, request: web.Request) -> web.Response:
        self._tenant(request)
        config = self._core.config
        return web.json_response(models_json(config.model, _STARTED, config.context_length))

    async def model(self, request: web.Request) -> web.Response:
        self._tenant(request)
        served, asked = self._core.config.model, request.match_info["model"]
        if asked != served:
            raise HttpError.no_model(f"model {asked!r} is not served here (this gateway "
                                     f"serves {served!r})")
        return web.json_response(model_json(served, _STARTED, self._core.config.context_length))

    async def _place(self, request: web.Request, tenant: str, call: common_pb2.CallSpec,
                     continues: Continuation | None = None) -> Placement:
        placed = await self._core.place(tenant, call, request.headers.get(PROGRAM_HEADER, ""),
                                        attribute=True, continues=continues)
        # the request's later log lines name its program and call, as over gRPC
        structlog.contextvars.bind_contextvars(program_id=placed.client_program_id,
                                               call_id=placed.call.call_id)
        return placed

    @contextlib.contextmanager
    def _refusals_counted(self, tenant: str, operation: str) -> Iterator[None]:
        """A request refused as invalid while its body is read into a call is a failed call
        in the call metrics (ostinato_calls_total, gen_ai_client_operation_duration), as the
        same call refused over gRPC is (trace review 2026-12-06: HTTP's were in neither)."""
        start = time.monotonic()
        try:
            yield
        except (BadRequest, HttpError) as exc:
            if not isinstance(exc, HttpError) or exc.status == 400:
                self._metrics.call_failed(tenant, operation, "INVALID_ARGUMENT",
                                          time.monotonic() - start)
            raise

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        tenant = self._tenant(request)
        with self._refusals_counted(tenant, genai.CHAT):
            body = await self._json(request)
            call = call_from_openai(body, request.headers.get(REQUEST_HEADER))
            stream, include_usage = wants_stream(body)
            n = choices(body)
            self._within_rpm(tenant, n)
        if body.get("max_completion_tokens") is not None:  # (it wins over max_tokens)
            request[MAX_TOKENS_SENT_AS] = "max_completion_tokens"
        placed = await self._place(request, tenant, call)
        model = self._core.config.model
        calls = [placed.call, *(_sibling(placed.call, i) for i in range(1, n))]
        siblings = [dataclasses.replace(placed, call=c) for c in calls[1:]]
        async with self._core.answering(tenant, placed, lambda: told(request)):
            if stream:
                return await ChatStream(self._core, request, tenant, placed, model,
                                        include_usage, hold_thinking=not streams_reasoning(body),
                                        siblings=siblings).run()
            results = await self._results(tenant, [placed, *siblings])
        response_id = f"chatcmpl-{uuid.uuid4().hex}"
        genai.record_response_id(response_id)
        return web.json_response(
            completion_json(response_id, model, int(time.time()),
                            placed.client_program_id, calls, results),
            headers=answer_headers(placed.client_program_id, results[0].cache_hit))

    async def completions(self, request: web.Request) -> web.StreamResponse:
        tenant = self._tenant(request)
        with self._refusals_counted(tenant, genai.TEXT_COMPLETION):
            body = await self._json(request)
            call = call_from_completion(body, request.headers.get(REQUEST_HEADER))
            stream, include_usage = wants_stream(body)
            prompts, n = completion_prompts(body), choices(body)
            self._within_rpm(tenant, len(prompts) * n)
        placed = await self._place(request, tenant, call)
        model = self._core.config.model
        calls = [placed.call, *(_sibling(placed.call, i, prompts[i // n])
                                for i in range(1, len(prompts) * n))]
        siblings = [dataclasses.replace(placed, call=c) for c in calls[1:]]
        async with self._core.answering(tenant, placed, lambda: told(request)):
            if stream:
                return await ChatStream(self._core, request, tenant, placed, model,
                                        include_usage, obj="text_completion", siblings=siblings,
                                        per_prompt=n).run()
            results = await self._results(tenant, [placed, *siblings])
        response_id = f"cmpl-{uuid.uuid4().hex}"
        genai.record_response_id(response_id)
        return web.json_response(
            text_completion_json(response_id, model, int(time.time()),
                                 placed.client_program_id, calls, results, n),
            headers=answer_headers(placed.client_program_id, results[0].cache_hit))

    def _within_rpm(self, tenant: str, calls: int) -> None:
        rpm = self._core.limits_of(tenant).rpm
        if rpm and calls > rpm:  # each answer is a call: never all within a minute's quota
            raise BadRequest(f"{calls} answers are {calls} calls, more than this tenant's "
                             f"{rpm} calls per minute", "n")

    async def _results(self, tenant: str, placements: list[Placement]) -> list[common_pb2.CallResult]:
        """Each call answered whole; one refused or failed: the others are cancelled, not
        run for nothing."""
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self._result(tenant, p)) for p in placements]
        except BaseExceptionGroup as failed:
            raise failed.exceptions[0] from None
        return [t.result() for t in tasks]

    async def responses(self, request: web.Request) -> web.StreamResponse:
        tenant = self._tenant(request)
        with self._refusals_counted(tenant, genai.CHAT):  # (its translation's refusals)
            return await respond(self._core, request, tenant, await self._json(request),
                                 self._place, self._result, self._stored,
                                 self._conversation_store)

    async def stored_response(self, request: web.Request) -> web.Response:
        space = self._space(request)
        return web.json_response(
            await retrieve(self._stored, space, request.match_info["response_id"], request.query))

    async def response_input_items(self, request: web.Request) -> web.Response:
        space = self._space(request)
        return web.json_response(await list_input_items(
            self._stored, space, request.match_info["response_id"], request.query))

    async def delete_response(self, request: web.Request) -> web.Response:
        space = self._space(request)
        return web.json_response(
            await delete(self._stored, space, request.match_info["response_id"]))

    async def _result(self, tenant: str, placed: Placement) -> common_pb2.CallResult:
        """A call answered whole (not streamed): its text comes with the result."""
        result = None
        async for item in self._core.run(tenant, dataclasses.replace(placed, whole=True),
                                         self._core.timeout(None)):
            if isinstance(item, common_pb2.CallResult):
                result = item
        if result is None:
            raise HttpError(500, "the call ended without a result", "api_error")
        return result
