"""Security review 2026-12-05 F4: a request aiohttp cannot parse (a header over 8,190 bytes)
is a clean 400 and its text, an API key in it, never reaches the log."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiohttp import web

from gateway.http_api import app_runner


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
