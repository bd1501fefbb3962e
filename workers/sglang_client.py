"""Async client of SGLang's native HTTP API, used by every worker (real SGLang or the sim engine).

Field names checked against SGLang's source:
- python/sglang/srt/managers/io_struct.py, GenerateReqInput: `text`, `input_ids`,
  `sampling_params` (dict), `rid`, `stream`, `priority` (int), `cache_salt`, `return_logprob`,
  `top_logprobs_num`, `return_text_in_logprobs`, `logprob_start_len`.
- python/sglang/srt/sampling/sampling_params.py, SamplingParams: `max_new_tokens`,
  `temperature`, `top_p`, `top_k`, `stop`, `ignore_eos`, `n`, `sampling_seed`,
  `presence_penalty`, `frequency_penalty`, `json_schema` (a JSON string; one of json_schema /
  regex / ebnf).
- python/sglang/srt/managers/tokenizer_manager.py, meta_info: `id`, `finish_reason`
  ({"type": "stop"|"length"|"abort", ...}), `prompt_tokens`, `completion_tokens`,
  `cached_tokens`, `e2e_latency` (on the finished response); with return_logprob,
  `output_token_logprobs` and `output_top_logprobs`, entries [logprob, token_id, text].
- python/sglang/srt/entrypoints/http_server.py: streaming is SSE `data: {...}` lines, text
  cumulative by default, ending with `data: [DONE]`; POST /abort_request {"rid": ...}.
- python/sglang/srt/managers/tokenizer_manager.py, `--incremental-streaming-output`: each
  streamed event's text, output_ids and logprobs are its own only (GET /get_server_info's
  `incremental_streaming_output` says so); the client reads both kinds of stream. Each
  cumulative event costs the whole answer so far to send and read: a long answer's events
  cost the square of its length (20k tokens: ~0.7 s of the worker's loop, measured).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from opentelemetry import propagate

from workers.engine_http import LeanHttp
from workers.engine_output import EngineOutput, StreamPieces, parse_output, sse_payloads
from workers.streamed_text import StreamedText, stop_strings, untrimmed_stop


class EngineError(Exception):
    """Base: the engine could not serve the request."""


class EngineUnavailable(EngineError):
    """Could not reach the engine (connection refused, reset before any token, 503), or
    its connection broke mid-stream (the engine died)."""


class EngineRejected(EngineError):
    """The engine refused the request as invalid (HTTP 4xx)."""


class EngineTimeout(EngineError):
    """No answer within the timeout."""


class EngineFailed(EngineError):
    """The engine failed mid-request, or answered with a server error."""


@dataclass(frozen=True)
class EngineRequest:
    """One /generate request. With `input_ids` (the chat-templated prompt, tokenized once by
    the gateway) `text` is not sent: SGLang takes one or the other."""

    rid: str
    text: str
    sampling_params: dict[str, Any] = field(default_factory=dict)
    priority: int | None = None
    cache_salt: str | None = None
    input_ids: list[int] | None = None
    top_logprobs_num: int | None = None  # None: no logprobs (SGLang return_logprob false)
    # the model thinks first: an engine with --reasoning-parser holds the grammar until the
    # thinking ends (SGLang's GenerateReqInput.require_reasoning; sent only when set)
    require_reasoning: bool = False

    def body(self, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"rid": self.rid, "sampling_params": self.sampling_params,
                                "stream": stream}
        if stream and untrimmed_stop(self.sampling_params):
            # the stream's last event keeps the stop string it ended at, so that text held
            # back for a stop string's start is known to be the answer's or the stop's
            body["sampling_params"] = {**self.sampling_params, "no_stop_trim": True}
        if self.input_ids:
            body["input_ids"] = self.input_ids
        else:
            body["text"] = self.text
        if self.priority is not None:
            body["priority"] = self.priority
        if self.cache_salt:
            body["cache_salt"] = self.cache_salt
        if self.require_reasoning:
            body["require_reasoning"] = True
        if self.top_logprobs_num is not None:
            body.update(return_logprob=True, top_logprobs_num=self.top_logprobs_num,
                        return_text_in_logprobs=True, logprob_start_len=-1)
        return body


def _error_text(error: Any) -> str:
    """An SGLang error event's message ({"message": ...}), else the event as it came."""
    return str(error.get("message", error)) if isinstance(error, dict) else str(error)


async def _events(resp: aiohttp.ClientResponse, stops: tuple[str, ...],
                  incremental: bool = False, untrimmed: bool = False,
                  ) -> AsyncGenerator[EngineOutput, None]:
    """A streamed response's outputs, to [DONE]; text that may begin one of `stops` is held
    back (workers/streamed_text.py). `incremental`: the engine runs with SGLang's
    --incremental-streaming-output (each event its new text only); `untrimmed`: the last
    event keeps the stop string (SGLang's no_stop_trim), cut here."""
    streamed = StreamedText(stops, untrimmed)
    pieces = StreamPieces() if incremental else None
    rest = b""  # an SSE line not complete yet
    done = False
    while not done:
        block = await resp.content.readany()
        lines = (rest + block).split(b"\n")
        rest = lines.pop() if block else b""  # at the end, whatever is left
        payloads, done = sse_payloads(lines)
        done = done or not block
        for i, payload in enumerate(payloads):
            if "error" in payload:  # SGLang streams the ValueError it answers 400 unstreamed
                raise EngineRejected(f"engine refused: {_error_text(payload['error'])}")
            refused = _refused_abort(payload)
            if refused is not None:
                raise EngineRejected(f"engine refused: {refused}")
            yield parse_output(payload, streamed, more=i < len(payloads) - 1, pieces=pieces)


def _refused_abort(payload: dict[str, Any]) -> str | None:
    """The message of a request the engine's scheduler refused as invalid (a grammar it
    cannot compile, an input past max_req_input_len): streamed, SGLang ends it as an
    event whose finish reason is an abort with a 4xx `status_code` (its FINISH_ABORT;
    unstreamed it is the 400 answer). None for any other event, and for an abort that is
    no refusal (one we asked for, or the engine's own trouble: retried elsewhere)."""
    reason = (payload.get("meta_info") or {}).get("finish_reason")
    if not isinstance(reason, dict) or reason.get("type") != "abort":
        return None
    status = reason.get("status_code")
    if not isinstance(status, int) or not 400 <= status < 500:
        return None
    return str(reason.get("message") or "aborted")


async def _answer(resp: aiohttp.ClientResponse) -> AsyncGenerator[EngineOutput, None]:
    """A non-streamed response's one output."""
    payload = await resp.json()
    if "error" in payload:
        raise EngineFailed(f"engine error: {payload['error']}")
    yield parse_output(payload)


class SGLangClient:
    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 600.0,
        connect_retries: int = 3,
        backoff_s: float = 0.1,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout_s = timeout_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=5.0)
        # answers read whole go through a leaner client than aiohttp's (an http:// engine)
        self._lean: LeanHttp | None = None
        with contextlib.suppress(ValueError):
            self._lean = LeanHttp(self.base_url)
        self._retries = connect_retries
        self._backoff_s = backoff_s
        self._session: aiohttp.ClientSession | None = None
        self._closed = False  # close() was called: no abort is sent any more
        self._releasing: set[asyncio.Task[None]] = set()
        # the engine streams each event's new text only (SGLang's
        # --incremental-streaming-output), as its /get_server_info says (`server_info`)
        self.incremental = False

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, connector=aiohttp.TCPConnector(limit=0)
            )
        return self._session

    async def close(self) -> None:
        self._closed = True
        for task in list(self._releasing):  # their connections close with the session
            task.cancel()
        if self._session is not None:
            await self._session.close()
        if self._lean is not None:
            self._lean.close()

    async def _open(self, path: str, body: dict[str, Any]) -> aiohttp.ClientResponse:
        """POSTs, retrying connection failures with backoff (nothing has streamed yet)."""
        last: Exception | None = None
        for attempt in range(self._retries + 1):
            if attempt:
                await asyncio.sleep(self._backoff_s * 2 ** (attempt - 1))
            try:
                headers: dict[str, str] = {}
                propagate.inject(headers)  # traceparent: the engine continues the trace
                resp = await self._http().post(self.base_url + path, json=body, headers=headers)
            except (aiohttp.ClientConnectionError, ConnectionError) as exc:
                last = exc
                continue
            except TimeoutError as exc:
                raise EngineTimeout(f"engine {self.base_url} timed out") from exc
            if resp.status == 503:
                last = EngineUnavailable(f"engine {self.base_url} answered 503")
                resp.release()
                continue
            if resp.status >= 400:
                detail = await resp.text()
                resp.release()
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    detail = json.loads(detail)["error"]["message"]
                cls = EngineRejected if resp.status < 500 else EngineFailed
                raise cls(f"engine answered {resp.status}: {detail}")
            return resp
        raise EngineUnavailable(f"cannot reach engine {self.base_url}: {last}")

    async def generate(self, request: EngineRequest,
                       stream: bool = True) -> AsyncGenerator[EngineOutput, None]:
        """Streams outputs; the last one has finish_reason set. Outputs that arrived
        together (read in one go from the connection) are marked `more` but the last.
        With `stream` False the engine answers once, when done (SGLang's non-streamed
        /generate: one HTTP write and one read, not one per token): one output, finished.

        If the consumer stops early (cancelled, or closes the iterator), the engine
        request is aborted with POST /abort_request.
        """
        if not stream and self._lean is not None:
            yield await self._whole(request)
            return
        try:
            resp = await self._open("/generate", request.body(stream=stream))
        except asyncio.CancelledError:  # the engine may be at work on it (unstreamed: all
            await asyncio.shield(self.abort(request.rid))  # of it, before any header)
            raise
        finished = False  # an output said so
        done = False  # and the answer was read to its end (n > 1: every sample's)
        try:
            outputs = (_events(resp, stop_strings(request.sampling_params), self.incremental,
                               untrimmed_stop(request.sampling_params))
                       if stream else _answer(resp))
            async with contextlib.aclosing(outputs) as outs:
                async for out in outs:
                    finished = finished or out.finished
                    yield out
            done = finished
            if not finished:  # (a body that ended early, or had no event of /generate's)
                raise EngineFailed(f"engine {self.base_url} answer ended without a result")
        except TimeoutError as exc:
            raise EngineTimeout(f"engine {self.base_url} timed out mid-stream") from exc
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
            raise EngineUnavailable(f"engine {self.base_url} stream broke: {exc}") from exc
        except (ValueError, TypeError, AttributeError, aiohttp.ContentTypeError) as exc:
            # (not JSON, or not /generate's shape: a failed call, not a worker left hanging)
            raise EngineFailed(f"engine {self.base_url} answered what is not SGLang's "
                               f"/generate: {exc!r}"[:500]) from exc
        finally:
            if done and not resp.content.is_eof():
                self._release_at_eof(resp)
            else:
                resp.release()
            if not done:  # (stopped early: the engine stops too)
                await asyncio.shield(self.abort(request.rid))

    async def _whole(self, request: EngineRequest) -> EngineOutput:
        """The unstreamed answer, through the lean client: as `generate` with `stream`
        False (the same retries, errors and abort), one request of bytes made at once."""
        body = json.dumps(request.body(stream=False), separators=(",", ":")).encode()
        headers: dict[str, str] = {}
        propagate.inject(headers)  # traceparent: the engine continues the trace
        try:
            answer = await self._post_whole("/generate", body, headers)
        except asyncio.CancelledError:  # the engine may be at work on it
            await asyncio.shield(self.abort(request.rid))
            raise
        try:
            payload = json.loads(answer)
            if isinstance(payload, dict) and "error" in payload:
                raise EngineFailed(f"engine error: {payload['error']}")
            out = parse_output(payload)
        except (ValueError, TypeError, AttributeError) as exc:
            out = None
            error: EngineError = EngineFailed(f"engine {self.base_url} answered what is not "
                                              f"SGLang's /generate: {exc!r}"[:500])
        except EngineFailed as exc:
            out, error = None, exc
        else:
            error = EngineFailed(f"engine {self.base_url} answer ended without a result")
        if out is not None and out.finished:
            return out
        await asyncio.shield(self.abort(request.rid))  # (as a stream stopped early)
        raise error

    async def _post_whole(self, path: str, body: bytes, headers: dict[str, str]) -> bytes:
        """A 200's body, as `_open` gets one: connection failures and 503s retried with
        backoff (nothing has been answered yet), errors mapped as there."""
        assert self._lean is not None
        last: Exception | None = None
        for attempt in range(self._retries + 1):
            if attempt:
                await asyncio.sleep(self._backoff_s * 2 ** (attempt - 1))
            try:
                answer = await self._lean.post(path, body, headers, self._timeout_s)
            except TimeoutError as exc:
                raise EngineTimeout(f"engine {self.base_url} timed out") from exc
            except OSError as exc:
                last = exc
                continue
            if answer.status == 503:
                last = EngineUnavailable(f"engine {self.base_url} answered 503")
                continue
            if answer.status >= 400:
                detail: Any = answer.body.decode("utf-8", "replace")
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    detail = json.loads(detail)["error"]["message"]
                cls = EngineRejected if answer.status < 500 else EngineFailed
                raise cls(f"engine answered {answer.status}: {detail}")
            return answer.body
        raise EngineUnavailable(f"cannot reach engine {self.base_url}: {last}")

    def _release_at_eof(self, resp: aiohttp.ClientResponse) -> None:
        """A response read to [DONE] whose body has not ended yet (SGLang writes the end
        of its chunked body after the last event): released now, its connection would be
        closed (aiohttp keeps only connections whose body was read to its end) and the
        next request would open another. Its end is read in the background, then the
        connection goes back to the pool."""

        async def release() -> None:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
                async with asyncio.timeout(5.0):
                    await resp.content.wait_eof()
            resp.release()

        task = asyncio.get_running_loop().create_task(release())
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)

    async def generate_once(self, request: EngineRequest) -> EngineOutput:
        """The engine's answer, not streamed."""
        outputs = [out async for out in self.generate(request, stream=False)]
        return outputs[-1]

    async def abort(self, rid: str) -> None:
        """Asks the engine to drop `rid` (2 s at most). Given up, the request still ends: the
        client's connection is closed by then, and SGLang aborts a request whose client has
        disconnected (TokenizerManager: a streamed one 2 s after, `create_abort_task`; one
        not streamed at its next poll of `request.is_disconnected()`)."""
        if self._closed:  # the worker is stopping: the engine's own requests end with it
            return
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, EngineError):
            resp = await self._http().post(self.base_url + "/abort_request", json={"rid": rid},
                                           timeout=aiohttp.ClientTimeout(total=2.0))
            resp.release()

    async def health(self) -> bool:
        try:
            async with self._http().get(self.base_url + "/health",
                                        timeout=aiohttp.ClientTimeout(total=2.0)) as resp:
                return resp.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def health_generate(self, timeout_s: float) -> bool:
        """SGLang's GET /health_generate: the engine runs a one-token generation. False when
        it answers anything but 200, cannot be reached, or takes longer than `timeout_s`
        (an engine that hangs)."""
        try:
            async with self._http().get(self.base_url + "/health_generate",
                                        timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
                return resp.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def server_info(self) -> dict[str, Any]:
        """SGLang's GET /get_server_info; the client learns from it how the engine streams
        (`incremental_streaming_output`: each event's new text only, not the whole so far)."""
        try:
            async with self._http().get(self.base_url + "/get_server_info") as resp:
                resp.raise_for_status()
                info = dict(await resp.json())
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise EngineUnavailable(f"cannot reach engine {self.base_url}: {exc}") from exc
        self.incremental = bool(info.get("incremental_streaming_output"))
        return info
