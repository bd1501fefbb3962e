"""A bug in an HTTP handler still answers in OpenAI's error shape (a JSON api_error 500),
not aiohttp's plain-text page that clients cannot parse; the traceback goes to the log."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.auth import ApiKeyAuthenticator
from gateway.core import GatewayCore
from gateway.http_api import OpenAiApi
from gateway.metrics import GatewayMetrics
from ostinato.config import GatewayConfig


async def test_an_exception_in_a_handler_is_a_json_500() -> None:
    config = GatewayConfig()
    core = GatewayCore(config, ApiKeyAuthenticator.from_keys({}, False), None, None)  # type: ignore[arg-type]
    api = OpenAiApi(core, GatewayMetrics(config.model))

    async def broken(request: web.Request) -> web.Response:
        raise TypeError("unhashable type: 'list'")  # as a set lookup of a list did (F2)

    api.health = broken  # type: ignore[method-assign]
    async with TestClient(TestServer(api.app())) as client:
        resp = await client.get("/health")
        assert resp.status == 500 and resp.content_type == "application/json"
        error = (await resp.json())["error"]
    assert error["type"] == "api_error" and "log has the error" in error["message"]
    assert "unhashable" not in error["message"]  # what went wrong inside stays inside
