"""The OpenAI-compatible HTTP API of the gateway (aiohttp), beside its gRPC service.

    POST /v1/chat/completions          one call; streamed as SSE with "stream": true
    POST /v1/programs                  start a program: {"deadline_s", "program_class", "program_id"}
    POST /v1/programs/{id}/end         end it; returns its summary
    GET  /metrics                      Prometheus text
    GET  /health

A chat completion runs in the program named by the `X-Ostinato-Program` header, or in a
one-call program of its own. `X-Ostinato-Cache` asks for a cache mode; the response says
`X-Ostinato-Cache-Hit`. Errors use OpenAI's JSON shape with the HTTP status of the gRPC
code the same failure gets on the gRPC API.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from aiohttp import web
from google.protobuf.duration_pb2 import Duration
from google.protobuf.json_format import MessageToDict

from cache.answers import AnswerCache
from cache.modes import HIT_HEADER, REQUEST_HEADER, hit_header
from gateway.auth import ApiKeyAuthenticator, Unauthenticated, api_key_from_metadata
from gateway.calls import CallLimits, InvalidCall, normalize_call
from gateway.execution import CallExecutor, CallFailed, Delta
from gateway.openai_format import (
    BadRequest,
    call_from_openai,
    chunk_sse,
    completion_json,
    error_json,
    extension_json,
    http_status,
    wants_stream,
)
from gateway.prometheus import render
from ostinato.config import GatewayConfig
from ostinato.retry import with_retry
from ostinato.v1 import common_pb2, planner_pb2, planner_pb2_grpc

PROGRAM_HEADER = "X-Ostinato-Program"


class HttpError(Exception):
    def __init__(self, status: int, message: str, kind: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.param = status, message, kind, param

    @classmethod
    def from_grpc(cls, code: grpc.StatusCode, message: str) -> HttpError:
        status, kind = http_status(code)
        return cls(status, message, kind)

    def response(self) -> web.Response:
        return web.json_response(error_json(self.message, self.kind, self.param), status=self.status)


class OpenAiApi:
    def __init__(self, config: GatewayConfig, auth: ApiKeyAuthenticator,
                 planner: planner_pb2_grpc.PlannerStub, executor: CallExecutor,
                 cache: AnswerCache | None = None,
                 tenancy_stale: Callable[[], bool] = lambda: False) -> None:
        self._config = config
        self._auth = auth
        self._planner = planner
        self._executor = executor
        self._cache = cache
        self._tenancy_stale = tenancy_stale
        self._limits = CallLimits(config.max_prompt_chars, config.max_messages,
                                  config.default_max_new_tokens, config.max_new_tokens_limit)
        self.responses: Counter[tuple[str, int]] = Counter()

    def app(self) -> web.Application:
        # Room for the largest prompt the gateway accepts (4 bytes a character, JSON escapes).
        app = web.Application(client_max_size=self._config.max_prompt_chars * 6 + 1_000_000,
                              middlewares=[self._errors])
        app.add_routes([
            web.post("/v1/chat/completions", self.chat_completions),
            web.post("/v1/programs", self.start_program),
            web.post("/v1/programs/{program_id}/end", self.end_program),
            web.get("/metrics", self.metrics),
            web.get("/health", self.health),
        ])
        return app

    @web.middleware
    async def _errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        route = request.match_info.route.resource.canonical if (
            request.match_info.route.resource is not None) else "unmatched"
        try:
            response = await handler(request)
        except HttpError as exc:
            response = exc.response()
        except web.HTTPRequestEntityTooLarge as exc:
            response = HttpError(413, f"request body too large: {exc.text}",
                                 "invalid_request_error").response()
        except web.HTTPException as exc:  # aiohttp's own: unknown route, wrong method
            response = HttpError(exc.status, exc.reason, "invalid_request_error").response()
        self.responses[(route, response.status)] += 1
        return response

    def _tenant(self, request: web.Request) -> str:
        headers = [(k.lower(), v) for k, v in request.headers.items()]
        try:
            return self._auth.tenant_for(api_key_from_metadata(headers))
        except Unauthenticated as exc:
            raise HttpError(401, str(exc), "authentication_error") from exc

    @staticmethod
    async def _json(request: web.Request) -> Any:
        try:
            return json.loads(await request.read())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise HttpError(400, f"the request body is not valid JSON: {exc}",
                            "invalid_request_error") from exc

    async def _planner_call(self, rpc: Any, request: Any) -> Any:
        try:
            return await with_retry(rpc, request, budget_s=30.0, attempt_timeout_s=10.0)
        except grpc.aio.AioRpcError as exc:
            raise HttpError.from_grpc(exc.code(), exc.details() or "planner error") from exc

    async def start_program(self, request: web.Request) -> web.Response:
        tenant = self._tenant(request)
        body = await self._json(request) if request.can_read_body else {}
        if not isinstance(body, dict):
            raise HttpError(400, "the request body must be a JSON object", "invalid_request_error")
        options = common_pb2.ProgramOptions(program_id=uuid.uuid4().hex)
        try:
            if body.get("program_id") is not None:
                options.program_id = str(body["program_id"])
            if body.get("program_class") is not None:
                options.program_class = str(body["program_class"])
            if body.get("deadline_s") is not None:
                deadline = float(body["deadline_s"])
                if deadline <= 0:
                    raise ValueError("deadline_s must be positive")
                options.deadline.CopyFrom(Duration(seconds=int(deadline),
                                                   nanos=int((deadline % 1) * 1e9)))
        except (TypeError, ValueError) as exc:
            raise HttpError(400, f"bad program options: {exc}", "invalid_request_error") from exc
        resp = await self._planner_call(self._planner.RegisterProgram,
                                        planner_pb2.RegisterProgramRequest(tenant=tenant,
                                                                           options=options))
        return web.json_response({"program_id": resp.program_id, "tenant": tenant})

    async def end_program(self, request: web.Request) -> web.Response:
        tenant = self._tenant(request)
        summary = await self._planner_call(
            self._planner.EndProgram,
            planner_pb2.EndProgramPlannerRequest(tenant=tenant,
                                                 program_id=request.match_info["program_id"]))
        return web.json_response(MessageToDict(summary, preserving_proto_field_name=True))

    async def metrics(self, request: web.Request) -> web.Response:
        cache = self._cache.metrics if self._cache is not None else None
        entries = len(self._cache.index) if self._cache is not None else 0
        return web.Response(text=render(cache, entries, self.responses, self._tenancy_stale()),
                            content_type="text/plain", charset="utf-8")

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        tenant = self._tenant(request)
        body = await self._json(request)
        try:
            call = normalize_call(call_from_openai(body, request.headers.get(REQUEST_HEADER)),
                                  self._limits)
            stream, include_usage = wants_stream(body)
        except BadRequest as exc:
            raise HttpError(400, str(exc), "invalid_request_error", exc.param) from exc
        except InvalidCall as exc:
            raise HttpError(400, str(exc), "invalid_request_error") from exc
        model = call.model or "default"
        program_id = request.headers.get(PROGRAM_HEADER, "")
        own_program = not program_id
        if own_program:
            started = await self._planner_call(self._planner.RegisterProgram,
                                               planner_pb2.RegisterProgramRequest(
                                                   tenant=tenant,
                                                   options=common_pb2.ProgramOptions(
                                                       program_id=uuid.uuid4().hex)))
            program_id = started.program_id
        items = self._executor.run(tenant, program_id, call, self._config.call_timeout_s)
        try:
            if stream:
                return await self._stream(request, items, model, program_id, include_usage)
            return await self._complete(items, model, program_id)
        finally:
            await items.aclose()  # a client gone mid-stream cancels the engine request
            if own_program:
                with contextlib.suppress(grpc.aio.AioRpcError):
                    await self._planner.EndProgram(planner_pb2.EndProgramPlannerRequest(
                        tenant=tenant, program_id=program_id), timeout=5.0)

    async def _complete(self, items: AsyncIterator[Delta | common_pb2.CallResult], model: str,
                        program_id: str) -> web.Response:
        result = None
        try:
            async for item in items:
                if isinstance(item, common_pb2.CallResult):
                    result = item
        except CallFailed as exc:
            raise HttpError.from_grpc(exc.code, exc.message) from exc
        if result is None:
            raise HttpError(500, "the call ended without a result", "api_error")
        return web.json_response(
            completion_json(f"chatcmpl-{uuid.uuid4().hex}", model, program_id, result),
            headers={HIT_HEADER: hit_header(result.cache_hit)})

    async def _stream(self, request: web.Request,
                      items: AsyncIterator[Delta | common_pb2.CallResult], model: str,
                      program_id: str, include_usage: bool) -> web.StreamResponse:
        completion_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        try:  # nothing is sent before the first item: an early failure is a plain HTTP error
            first = await anext(items)
        except CallFailed as exc:
            raise HttpError.from_grpc(exc.code, exc.message) from exc
        except StopAsyncIteration as exc:
            raise HttpError(500, "the call ended without a result", "api_error") from exc
        hit = first.cache_hit
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
            HIT_HEADER: hit_header(hit)})
        await response.prepare(request)
        await response.write(chunk_sse(completion_id, model, created,
                                       {"role": "assistant", "content": ""}))
        pending: Delta | common_pb2.CallResult | None = first
        try:
            while True:
                item = pending if pending is not None else await anext(items)
                pending = None
                if isinstance(item, Delta):
                    await response.write(chunk_sse(completion_id, model, created,
                                                   {"content": item.text}))
                    continue
                await response.write(chunk_sse(completion_id, model, created, {},
                                               finish_reason=item.finish_reason or "stop",
                                               extension=extension_json(program_id, item)))
                if include_usage:
                    await response.write(chunk_sse(completion_id, model, created, {},
                                                   usage=item.usage))
                break
        except StopAsyncIteration:
            await response.write(b"data: " + json.dumps(error_json(
                "the call ended without a result", "api_error")).encode() + b"\n\n")
        except CallFailed as exc:  # headers are gone: the error travels in the stream
            _, kind = http_status(exc.code)
            await response.write(b"data: " + json.dumps(error_json(
                exc.message, kind, code=exc.code.name)).encode() + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


async def start_http(api: OpenAiApi, host: str, port: int) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(api.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, int(bound)
