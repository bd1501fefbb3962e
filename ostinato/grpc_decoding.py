"""Requests that do not decode (bad wire bytes, string fields that are not UTF-8) get
INVALID_ARGUMENT naming the message type, instead of grpc.aio's UNKNOWN ("Unexpected
DecodeError"): a server interceptor gives every method a deserializer that keeps the
failure, and its behaviour aborts before the servicer sees it."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError


class _Undecodable:
    def __init__(self, error: DecodeError) -> None:
        self.error = error


def _keep_failure(deserialize: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def run(data: bytes) -> Any:
        try:
            return deserialize(data)
        except DecodeError as exc:
            return _Undecodable(exc)
    return run


def _refusing(behavior: Callable[..., Any], streams: bool) -> Callable[..., Any]:
    async def refuse(request: _Undecodable, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                            f"the request is not a valid message: {request.error}")

    if streams and inspect.isasyncgenfunction(behavior):
        async def stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if isinstance(request, _Undecodable):
                await refuse(request, context)
            async for item in behavior(request, context):
                yield item
        return stream

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, _Undecodable):
            await refuse(request, context)
        return await behavior(request, context)  # a unary reply, or a stream by context.write
    return unary


class DecodeErrorInterceptor(grpc.aio.ServerInterceptor):
    """For unary-request methods (every RPC the mesh defines)."""

    async def intercept_service(
            self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
            handler_call_details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_streaming or handler.request_deserializer is None:
            return handler
        if handler.unary_unary is not None:
            return handler._replace(request_deserializer=_keep_failure(handler.request_deserializer),
                                    unary_unary=_refusing(handler.unary_unary, streams=False))
        if handler.unary_stream is not None:
            return handler._replace(request_deserializer=_keep_failure(handler.request_deserializer),
                                    unary_stream=_refusing(handler.unary_stream, streams=True))
        return handler
