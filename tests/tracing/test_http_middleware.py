"""An HTTP request's log fields: its own (trace review 2026-12-06: the HTTP API bound only
`traceparent`, never the tenant, program and call the gRPC interceptors bind), and none left
from an earlier request served in the same task (a keep-alive connection's)."""

from __future__ import annotations

import structlog
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from tracing.http_middleware import tracing_middleware


async def test_a_request_starts_with_no_fields_of_an_earlier_one() -> None:
    seen: list[dict[str, object]] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(dict(structlog.contextvars.get_contextvars()))
        structlog.contextvars.bind_contextvars(tenant="acme", program_id="p1", call_id="c1")
        return web.Response()

    middleware = tracing_middleware()
    structlog.contextvars.bind_contextvars(service="gateway")
    try:
        for headers in ({"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}, {}):
            await middleware(make_mocked_request("GET", "/v1/models", headers=headers), handler)
    finally:
        structlog.contextvars.clear_contextvars()
    assert seen[0] == {"service": "gateway", "traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}
    assert seen[1] == {"service": "gateway"}  # the first's tenant, program, call: gone


async def test_the_http_api_binds_the_tenant_it_authenticates() -> None:
    from gateway.auth import ApiKeyAuthenticator
    from gateway.core import GatewayCore
    from gateway.http_api import OpenAiApi
    from gateway.metrics import GatewayMetrics
    from ostinato.config import GatewayConfig

    core = GatewayCore(GatewayConfig(), ApiKeyAuthenticator.from_keys({"k": "acme"}, False),
                       None, None)  # type: ignore[arg-type]
    api = OpenAiApi(core, GatewayMetrics("m"))
    try:
        api._tenant(make_mocked_request("GET", "/v1/models", headers={"Authorization": "Bearer k"}))
        assert structlog.contextvars.get_contextvars()["tenant"] == "acme"
    finally:
        structlog.contextvars.clear_contextvars()
