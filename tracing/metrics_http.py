"""Prometheus metrics over HTTP: the /metrics response every service returns, and a small
aiohttp server for the services with no HTTP server of their own (planner, workers).

Each service keeps its metrics in its own `CollectorRegistry` (several services, or several
sim engines, may share a process in tests); this module only serves one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.openmetrics.exposition import ALLOWUTF8


def metrics_response(registry: CollectorRegistry, accept: str = "") -> web.Response:
    """The registry in the Prometheus text format (or OpenMetrics when `accept` asks).
    An Accept that names no escaping (Prometheus 2's scrapers) gets names as they are:
    prometheus_client's default then escaped the ':' of SGLang's names (`sglang:num_requests`
    became `sglang_num_requests` in samples, not in their `# TYPE` lines: trace review
    2026-12-06), which are valid Prometheus names and what the dashboards query."""
    if "escaping=" not in accept:
        accept = ",".join(f"{part};escaping={ALLOWUTF8}" if part.split(";")[0].strip() in (
            "application/openmetrics-text", "text/plain") else part
            for part in accept.split(",")) if accept else accept
    encoder, content_type = choose_encoder(accept)
    return web.Response(body=encoder(registry), headers={"Content-Type": content_type})


def metrics_handler(registry: CollectorRegistry) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        return metrics_response(registry, request.headers.get("Accept", ""))
    return handle


@dataclass
class MetricsServer:
    runner: web.AppRunner
    address: str  # host:port

    async def close(self) -> None:
        await self.runner.cleanup()


async def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> MetricsServer | None:
    """GET /metrics on host:port (0: a free port); None when port is -1 (metrics off)."""
    if port < 0:
        return None
    app = web.Application()
    app.router.add_get("/metrics", metrics_handler(registry))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    return MetricsServer(runner, f"{host}:{bound}")
