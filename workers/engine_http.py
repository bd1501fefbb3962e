"""A lean HTTP/1.1 client for the engine's unstreamed POSTs (SGLang's /generate answered whole).

aiohttp's client builds a request from many objects (URL, headers multidict, payload,
timer, response reader); for a small JSON request and its one answer on loopback that was
about half the worker's time around the engine request (session 31: ~300 against ~150 us of
CPU a request). Here a request is one write of bytes made ready at once, on a keep-alive
connection of a pool, and the answer is collected whole by a protocol and wakes its caller
once. Answers are parsed by httptools (llhttp, the C parser under uvicorn and Node.js:
lengths, chunks, keep-alive rules); what is ours is the pool, the request's bytes and the
one write. (h11, the pure-Python parser, was tried: ~235 us of client CPU a request, as
aiohttp's; with httptools about 100-150.)

Only for answers read whole: streamed answers (SSE) stay with aiohttp. Errors are those of
the socket: OSError (ConnectionError among them) when the engine cannot be reached or the
connection breaks before the answer is whole, TimeoutError past the timeout. A connection
that the engine closed while idle in the pool (a keep-alive timeout) is found on reuse,
before any byte of the answer: the request is written again once, on a new connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools

MAX_IDLE = 64  # idle keep-alive connections kept


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


class _Connection(asyncio.Protocol):
    """One keep-alive connection. Its answers are parsed by httptools (llhttp, the C parser
    uvicorn and Node.js use): lengths, chunks, keep-alive rules; a body delimited by the
    connection's end is whole at its end."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.received = False  # a byte of the current answer
        self._parser = httptools.HttpResponseParser(self)
        self._body: list[bytes] = []
        self._headers_done = False
        self._delimited = False  # its length is known (Content-Length or chunked)
        self._waiter: asyncio.Future[tuple[Answer, bool]] | None = None

    # ---- httptools' callbacks --------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() in (b"content-length", b"transfer-encoding"):
            self._delimited = True

    def on_headers_complete(self) -> None:
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # informational: the real answer follows
            self._reset()
            return
        self._done(Answer(status, b"".join(self._body)), self._parser.should_keep_alive())

    # ---- asyncio's -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:  # not HTTP: of no further use
            self._fail(ConnectionError(f"the engine's answer is not HTTP: {exc}"))
            self.close()

    def eof_received(self) -> bool:
        if self._headers_done and not self._delimited:  # a body read to the end: whole now
            self._done(Answer(self._parser.get_status_code(), b"".join(self._body)), False)
        return False  # (the transport closes)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionResetError("the engine closed the connection before its answer "
                                        "was whole" + (f": {exc}" if exc else "")))

    # ---- ours --------------------------------------------------------------------------

    def send(self, request: bytes) -> asyncio.Future[tuple[Answer, bool]]:
        """Writes a request; the future gets its answer and whether the connection stays."""
        assert self.transport is not None
        self.received = False
        self._reset()
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self._waiter

    def _reset(self) -> None:
        self._body, self._headers_done, self._delimited = [], False, False

    def _done(self, answer: Answer, keep: bool) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result((answer, keep))

    def _fail(self, exc: Exception) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class LeanHttp:
    """POSTs to one http:// origin over a pool of keep-alive connections."""

    def __init__(self, base_url: str) -> None:
        url = urlsplit(base_url)
        if url.scheme != "http" or not url.hostname:
            raise ValueError(f"not an http:// URL: {base_url!r}")
        self._host = url.hostname
        self._port = url.port or 80
        self._prefix = url.path.rstrip("/")
        self._host_header = url.netloc.rsplit("@", 1)[-1].encode("latin-1")
        self._idle: list[_Connection] = []
        self._busy: set[_Connection] = set()

    async def _connect(self) -> _Connection:
        _, conn = await asyncio.get_running_loop().create_connection(
            _Connection, self._host, self._port)
        return conn

    def _request(self, path: str, body: bytes, headers: Mapping[str, str]) -> bytes:
        """The request's bytes, made at once (one write)."""
        head = [b"POST ", (self._prefix + path).encode("latin-1"), b" HTTP/1.1\r\nHost: ",
                self._host_header,
                b"\r\nContent-Type: application/json\r\nContent-Length: ",
                str(len(body)).encode(), b"\r\n"]
        for name, value in headers.items():
            head += [name.encode("latin-1"), b": ", value.encode("latin-1"), b"\r\n"]
        head += [b"\r\n", body]
        return b"".join(head)

    async def post(self, path: str, body: bytes, headers: Mapping[str, str] | None = None,
                   timeout_s: float | None = None) -> Answer:
        """The answer to a JSON POST, read whole. Cancelled or timed out, the connection
        is closed (the engine sees its client go)."""
        request = self._request(path, body, headers or {})
        async with asyncio.timeout(timeout_s):
            while self._idle:
                conn = self._idle.pop()
                if conn.closed:
                    continue
                answer = await self._exchange(conn, request, reused=True)
                if answer is not None:
                    return answer
                break  # the engine had closed it while idle: a new one
            answer = await self._exchange(await self._connect(), request, reused=False)
            assert answer is not None
            return answer

    async def _exchange(self, conn: _Connection, request: bytes, reused: bool) -> Answer | None:
        """None: a reused connection broke before any byte of the answer came."""
        self._busy.add(conn)
        keep = False
        try:
            answer, keep = await conn.send(request)
            return answer
        except ConnectionError:
            if reused and not conn.received:
                return None
            raise
        finally:
            self._busy.discard(conn)
            if keep and not conn.closed and len(self._idle) < MAX_IDLE:
                self._idle.append(conn)
            else:
                conn.close()

    def close(self) -> None:
        for conn in [*self._idle, *self._busy]:
            with contextlib.suppress(Exception):
                conn.close()
        self._idle.clear()
        self._busy.clear()
