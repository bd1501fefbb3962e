"""The HTTP API's server: aiohttp's runner as the gateway runs it (gateway/http_api.py holds
the routes), and the filter that keeps request text out of its log."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from gateway.draining import CUT_WRITE_S
from gateway.http_api import OpenAiApi

# How long an idle keep-alive connection stays open (aiohttp's default is an hour: a
# client's idle connections held the gateway's sockets that long)
KEEPALIVE_S = 75.0


async def start_http(api: OpenAiApi, host: str, port: int,
                     grace_s: float = 5.0) -> tuple[web.AppRunner, int]:
    """Serves `api`; `grace_s`: how long requests in flight get once it stops (then
    `api.draining` cuts them: stop it with `api.draining.stop(runner, grace_s)`)."""
    runner = app_runner(api.app(), grace_s + CUT_WRITE_S)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, int(bound)


class _NoRequestText(logging.Filter):
    """aiohttp logs a request it cannot parse (a header line over 8,190 bytes ...) at ERROR
    with a traceback quoting the line: an Authorization header's API key with it (security
    review 2026-12-05 F4), and a way for anyone to flood the log. The client still gets its
    400; the log gets the error's type only, at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.msg, record.args = "refused an HTTP request it could not parse (%s)", (
                type(exc).__name__,)
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return SERVER_LOG.isEnabledFor(logging.DEBUG)
        return True


SERVER_LOG = logging.getLogger("aiohttp.server.gateway")
SERVER_LOG.addFilter(_NoRequestText())


def app_runner(app: web.Application, shutdown_timeout: float) -> web.AppRunner:
    """The HTTP API's runner: no access log, requests that cannot be parsed logged without
    their text (_NoRequestText), and a request whose client has gone is cancelled at once
    (handler_cancellation): its call stops at the engine and frees its planner slot, as a
    stream's does at its next write. Without it an unstreamed request, which writes
    nothing before its end, ran to its end for no one (workers review 2026-12-05 F1)."""
    return web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout,
                         logger=SERVER_LOG, handler_cancellation=True,
                         keepalive_timeout=KEEPALIVE_S)
