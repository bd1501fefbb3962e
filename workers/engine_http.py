"""A lean HTTP/1.1 client for the engine's unstreamed POSTs (SGLang's /generate answered whole).

aiohttp's client builds a request from many objects (URL, headers multidict, payload,
timer, response reader); for a small JSON request and its one answer on loopback that was
about half the worker's time around the engine request (session 31: ~300 against ~150 us of
CPU a request). Here a request is one write of bytes made ready at once, on a keep-alive
connection of a pool, and the answer is read by a protocol that collects it whole
(Content-Length, chunked, or to the connection's end) and wakes its caller once.

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

MAX_IDLE = 64  # idle keep-alive connections kept


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


class _Parsed(Exception):
    """The buffer holds no complete answer yet."""


def _chunked(buf: bytearray, start: int) -> tuple[bytes, int] | None:
    """A chunked body from `start`: (body, its end), or None while incomplete."""
    body = bytearray()
    pos = start
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(bytes(buf[pos:eol]).split(b";", 1)[0].strip() or b"0", 16)
        pos = eol + 2
        if size == 0:  # then trailers (none, usually) and an empty line
            if buf[pos:pos + 2] == b"\r\n":
                return bytes(body), pos + 2
            end = buf.find(b"\r\n\r\n", pos)
            return None if end < 0 else (bytes(body), end + 4)
        if len(buf) < pos + size + 2:
            return None
        body += buf[pos:pos + size]
        pos += size + 2


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.received = False  # a byte of the current answer
        self._buf = bytearray()
        self._eof = False
        self._waiter: asyncio.Future[tuple[Answer, bool]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received = True
        self._buf += data
        self._complete()

    def eof_received(self) -> bool:
        self._eof = True
        self._complete()
        return False  # (the transport closes)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._eof = True
        self._complete()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionResetError(
                "the engine closed the connection before its answer was whole"
                + (f": {exc}" if exc else "")))

    def send(self, request: bytes) -> asyncio.Future[tuple[Answer, bool]]:
        """Writes a request; the future gets its answer and whether the connection stays."""
        assert self.transport is not None
        self._buf.clear()
        self.received = False
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self._waiter

    def _complete(self) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        try:
            answer = self._parse()
        except _Parsed:
            return
        except ValueError as exc:  # not HTTP: the connection is of no further use
            waiter.set_exception(ConnectionError(f"the engine's answer is not HTTP: {exc}"))
            self.close()
            return
        waiter.set_result(answer)

    def _parse(self) -> tuple[Answer, bool]:
        buf = self._buf
        head_end = buf.find(b"\r\n\r\n")
        if head_end < 0:
            if self._eof and buf:
                raise ValueError("the connection ended within the headers")
            raise _Parsed
        lines = bytes(buf[:head_end]).split(b"\r\n")
        version, _, rest = lines[0].partition(b" ")
        status = int(rest[:3])
        length, chunked, connection = -1, False, b""
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                connection = value.strip().lower()
        close = connection == b"close" or (version == b"HTTP/1.0" and connection != b"keep-alive")
        start = head_end + 4
        if status in (204, 304) or 100 <= status < 200:
            body, end = b"", start
        elif chunked:
            parsed = _chunked(buf, start)
            if parsed is None:
                if self._eof:
                    raise ValueError("the connection ended within a chunked body")
                raise _Parsed
            body, end = parsed
        elif length >= 0:
            if len(buf) < start + length:
                if self._eof:
                    raise ValueError("the connection ended within the body")
                raise _Parsed
            body, end = bytes(buf[start:start + length]), start + length
        else:  # delimited by the connection's end
            if not self._eof:
                raise _Parsed
            body, end, close = bytes(buf[start:]), len(buf), True
        del buf[:end]
        return Answer(status, body), not close and not self._eof

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
