"""The worker's lean HTTP/1.1 client for unstreamed engine answers, against servers that
answer as HTTP allows (lengths, chunks, to the connection's end, closing when idle)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from workers.engine_http import LeanHttp
from workers.sglang_client import EngineRejected, EngineRequest, EngineUnavailable, SGLangClient

Answerer = Callable[[bytes, int], Awaitable[bytes | None]]  # (request, its number) -> answer


@contextlib.asynccontextmanager
async def _raw_server(answer: Answerer, close_after: bool = False,
                      ) -> AsyncIterator[tuple[str, list[int]]]:
    """A server answering each request read on a connection with `answer`'s bytes (None:
    the connection is closed instead); the number of connections made, as a list."""
    connections: list[int] = [0]
    served = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        connections[0] += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                request = head + await reader.readexactly(length)
                served += 1
                out = await answer(request, served)
                if out is None:
                    break
                writer.write(out)
                await writer.drain()
                if close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", connections
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 1.0)


def _ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n" % (len(body), extra) + body


async def test_answers_by_length_reuse_one_connection() -> None:
    async def answer(request: bytes, n: int) -> bytes:
        assert request.startswith(b"POST /generate HTTP/1.1\r\n")
        assert b"\r\nx-trace: t1\r\n" in request and request.endswith(b'{"a":1}')
        return _ok(b'{"n": %d}' % n)

    async with _raw_server(answer) as (url, connections):
        http = LeanHttp(url)
        for n in (1, 2, 3):
            got = await http.post("/generate", b'{"a":1}', {"x-trace": "t1"})
            assert got.status == 200 and json.loads(got.body) == {"n": n}
        http.close()
    assert connections == [1]


async def test_a_chunked_answer_is_read_whole() -> None:
    async def answer(request: bytes, n: int) -> bytes:
        return (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"4\r\n{\"a\"\r\n5;x=y\r\n: 12}\r\n0\r\n\r\n")

    async with _raw_server(answer) as (url, connections):
        http = LeanHttp(url)
        for _ in range(2):
            assert json.loads((await http.post("/generate", b"{}")).body) == {"a": 12}
        http.close()
    assert connections == [1]


async def test_an_answer_to_the_connections_end_and_connection_close() -> None:
    async def answer(request: bytes, n: int) -> bytes:
        return b"HTTP/1.0 200 OK\r\n\r\nall of it" if n == 1 else _ok(b"x", b"Connection: close\r\n")

    async with _raw_server(answer, close_after=True) as (url, connections):
        http = LeanHttp(url)
        assert (await http.post("/generate", b"{}")).body == b"all of it"
        assert (await http.post("/generate", b"{}")).body == b"x"
        assert (await http.post("/generate", b"{}")).body == b"x"
        http.close()
    assert connections == [3]


async def test_a_connection_the_engine_closed_while_idle_is_replaced() -> None:
    # (a keep-alive timeout: the server ends the connection after its answer, unannounced)
    async def answer(request: bytes, n: int) -> bytes:
        return _ok(b"%d" % n)

    async with _raw_server(answer, close_after=True) as (url, connections):
        http = LeanHttp(url)
        assert (await http.post("/generate", b"{}")).body == b"1"
        # whether or not the client has seen the close yet (then the request written on it
        # is answered by a reset, before any byte of an answer)
        assert (await http.post("/generate", b"{}")).body == b"2"
        while not http._idle[0].closed:  # the close seen: the next request opens another
            await asyncio.sleep(0)
        assert (await http.post("/generate", b"{}")).body == b"3"
        http.close()
    assert connections == [3]


async def test_a_connection_broken_mid_answer_fails_and_is_not_retried() -> None:
    async def answer(request: bytes, n: int) -> bytes | None:
        return b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort" if n == 1 else None

    async with _raw_server(answer, close_after=True) as (url, connections):
        http = LeanHttp(url)
        with pytest.raises(ConnectionError):
            await http.post("/generate", b"{}")
        http.close()
    assert connections == [1]


async def test_a_timeout_closes_the_connection() -> None:
    release = asyncio.Event()

    async def answer(request: bytes, n: int) -> bytes:
        if n == 1:
            await release.wait()
        return _ok(b"late" if n == 1 else b"next")

    async with _raw_server(answer) as (url, connections):
        http = LeanHttp(url)
        with pytest.raises(TimeoutError):
            await http.post("/generate", b"{}", timeout_s=0.05)
        release.set()
        assert (await http.post("/generate", b"{}")).body == b"next"  # not the late answer
        http.close()
    assert connections == [2]


def test_only_http_urls() -> None:
    with pytest.raises(ValueError):
        LeanHttp("https://engine:443")


async def _sim_like(statuses: list[int]) -> web.Application:
    async def generate(request: web.Request) -> web.Response:
        status = statuses.pop(0) if statuses else 200
        if status != 200:
            return web.json_response({"error": {"message": f"no: {status}"}}, status=status)
        body = await request.json()
        assert body["stream"] is False and body["rid"] == "r"
        return web.json_response({"text": "ok", "meta_info": {
            "finish_reason": {"type": "stop"}, "prompt_tokens": 2, "completion_tokens": 1}})

    app = web.Application()
    app.router.add_post("/generate", generate)
    return app


@pytest.mark.parametrize(("statuses", "outcome"), [
    ([503, 503], "ok"), ([503, 503, 503], EngineUnavailable), ([400], EngineRejected)])
async def test_unstreamed_generate_retries_and_maps_statuses(statuses: list[int],
                                                             outcome: object) -> None:
    runner = web.AppRunner(await _sim_like(statuses))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    client = SGLangClient(f"http://127.0.0.1:{runner.addresses[0][1]}", connect_retries=2,
                          backoff_s=0.001)
    try:
        request = EngineRequest(rid="r", text="hi")
        if outcome == "ok":
            out = await client.generate_once(request)
            assert out.text == "ok" and out.finish_reason == "stop" and out.prompt_tokens == 2
        else:
            with pytest.raises(outcome):  # type: ignore[call-overload]
                await client.generate_once(request)
    finally:
        await client.close()
        await runner.cleanup()
