"""Security review 2026-12-05 F4: a request aiohttp cannot parse (a header over 8,190 bytes)
is a clean 400 and its text, an API key in it, never reaches the log."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiohttp import web

from gateway.http_server import app_runner


async def test_an_over_long_header_is_a_400_and_not_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    key = "ost-SECRETKEY123456789"
    runner = app_runner(web.Application(), 1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    caplog.set_level(logging.INFO)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        header = f"Authorization: Bearer {key}{' ' * 8200}x"
        writer.write(f"GET /v1/models HTTP/1.1\r\nHost: x\r\n{header}\r\n\r\n".encode())
        await writer.drain()
        status = await reader.readline()
        await reader.read()  # the server closes the connection
        writer.close()
    finally:
        await runner.cleanup()
    assert status.split()[1] == b"400"
    assert key not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_body_that_does_not_arrive_is_a_408_and_the_connection_closes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Overload review 2026-12-06: a body sent a byte at a time, or never, held its
    connection for good (150 of 150 still open after 150 s)."""
    from gateway import http_api
    from gateway.http_api import OpenAiApi
    from gateway.http_errors import HttpError

    monkeypatch.setattr(http_api, "BODY_READ_S", 0.3)

    async def echo(request: web.Request) -> web.Response:
        try:
            return web.json_response(await OpenAiApi._json(request))
        except HttpError as exc:
            return web.Response(status=exc.status, text=exc.message)

    app = web.Application()
    app.router.add_post("/x", echo)
    runner = app_runner(app, 1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"a\"")
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 10.0)
        writer.close()
    finally:
        await runner.cleanup()
    assert status.split()[1] == b"408"
