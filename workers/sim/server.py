"""`ostinato sim-engine`: the sim engine behind SGLang's native HTTP API.

Endpoints and fields follow SGLang's http_server.py / io_struct.py GenerateReqInput:
POST /generate (JSON or SSE `data: {...}` lines ending with `data: [DONE]`),
POST /abort_request, GET /health, GET /health_generate, GET /get_server_info,
GET /get_model_info, GET /v1/models (the context window), POST /flush_cache, GET /metrics.
Every response says it is simulated.
With `debug_endpoints` (tests only), POST /_debug/hang {"hang": true} makes the engine hang:
new requests, /health_generate and running streams wait until {"hang": false}.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import structlog
from aiohttp import web

from ostinato.collector import freeze_after_start
from ostinato.config import SimEngineConfig
from ostinato.serving import write_port_file
from tracing.http_middleware import tracing_middleware
from tracing.metrics_http import metrics_handler
from workers.sim.engine import HEALTH_CHECK_RID, RealtimeSimEngine, SimRequest
from workers.sim.generate_request import BadRequest, parse_generate
from workers.sim.metrics import sim_engine_registry
from workers.sim.scheduler import EngineEvent
from workers.sim.tokenizer import GrowingText, detokenize
from workers.streamed_text import StreamedText

log = structlog.get_logger(__name__)

_ENGINE = web.AppKey("engine", RealtimeSimEngine)
_STARTED = int(time.time())
_RUNNING = web.AppKey("running", asyncio.Event)  # cleared while the engine hangs (tests)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": {"message": message}}, status=status)


def _logprob(token_id: int, rank: int) -> float:
    """A made-up but deterministic log probability (SIMULATED): the chosen token's is the
    highest; alternatives fall off with rank."""
    return -round(((token_id * 2654435761 + rank) % 1000) / 400.0 + rank * 0.7, 4)


def logprobs_meta(ids: Sequence[int], top: int) -> dict[str, Any]:
    """SGLang's meta_info logprob fields for output tokens: output_token_logprobs entries are
    [logprob, token_id, token_text] (return_text_in_logprobs), output_top_logprobs a list of
    such entries a position."""
    out: dict[str, Any] = {"output_token_logprobs": [
        [_logprob(t, 0), t, detokenize([t])] for t in ids]}
    if top:
        out["output_top_logprobs"] = [
            [[_logprob(t, 0), t, detokenize([t])]] + [
                [_logprob(t, r), r, f"<alt{r}>"] for r in range(1, top)] for t in ids]
    return out


def _payload(rid: str, text: str, event: EngineEvent, index: int | None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "id": rid,
        "finish_reason": event.finish_reason,
        "prompt_tokens": event.prompt_tokens,
        "completion_tokens": event.completion_tokens,
        "cached_tokens": event.cached_tokens,
        "simulated": True,
    }
    if event.finished:
        meta["e2e_latency"] = event.e2e_latency
    out: dict[str, Any] = {"text": text, "meta_info": meta}
    if index is not None:
        out["index"] = index
    return out


async def _sample(engine: RealtimeSimEngine, req: SimRequest, index: int | None,
                  top_logprobs: int | None, incremental: bool = False,
                  finals_only: bool = False, received: float | None = None,
                  ) -> AsyncGenerator[dict[str, Any], None]:
    """The sample's events: the whole text so far in each (SGLang's default), or with
    `incremental` (its --incremental-streaming-output) each event's new text only, and its
    logprobs those of the new tokens; the last takes back nothing sent, as SGLang's. As
    SGLang's scheduler, no event while the text ends in what may begin a stop string.
    `finals_only` (an answer taken whole): the finished event alone. `received`: for a
    zero-cost engine, when the request came (time.perf_counter(), its body parsed): its
    finished event's e2e_latency is its handling since, as SGLang's runs from the request's
    state (made before it is tokenized) to its output handled, so the engine's own work is
    its time, not its caller's (its model time is 0). A timed engine's e2e_latency is its
    model's, on its clock (wall / time_scale), as calibrate fits it."""
    text, sent, logged = "", 0, 0
    stops = StreamedText(req.stop)
    tokens = GrowingText()  # (logprobs: the output's tokens, each tokenized once)
    async for event in engine.generate(req):
        if finals_only and not event.finished:
            continue  # (its text is the whole text)
        text = event.text if event.finished else text + event.delta
        if req.stop and not event.finished and stops.held(text):
            continue  # SGLang sends nothing while the text may begin a stop string
        payload = _payload(req.rid, text, event, index)
        meta = payload["meta_info"]
        if event.finished and received is not None:
            meta["e2e_latency"] = time.perf_counter() - received
        if top_logprobs is not None:  # cumulative, as SGLang streams them; incremental: the
            ids = tokens.ids(text)  # new tokens' only, each built once, those of a word
            # that the next text may extend held back until it is final
            upto = len(ids) if event.finished or not incremental else tokens.settled
            meta.update(logprobs_meta(ids[logged:upto] if incremental else ids, top_logprobs))
            logged = max(logged, upto)
        if incremental:
            payload["text"] = text[sent:]
            sent = max(sent, len(text))
        yield payload


async def _merged(engine: RealtimeSimEngine, reqs: list[SimRequest],
                  top_logprobs: int | None = None, incremental: bool = False,
                  finals_only: bool = False, received: float | None = None,
                  ) -> AsyncGenerator[dict[str, Any], None]:
    """Interleaves the n samples' payloads as they are produced (SGLang adds "index")."""
    if len(reqs) == 1:
        async for payload in _sample(engine, reqs[0], None, top_logprobs, incremental,
                                     finals_only, received):
            yield payload
        return
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    async def pump(req: SimRequest, i: int) -> None:
        async for payload in _sample(engine, req, i, top_logprobs, incremental, finals_only,
                                     received):
            queue.put_nowait(payload)
        queue.put_nowait(None)

    tasks = [asyncio.create_task(pump(r, i)) for i, r in enumerate(reqs)]
    try:
        remaining = len(tasks)
        while remaining:
            item = await queue.get()
            if item is None:
                remaining -= 1
            else:
                yield item
    finally:
        for t in tasks:
            t.cancel()


async def generate(request: web.Request) -> web.StreamResponse:
    engine = request.app[_ENGINE]
    try:
        body = await request.json()
        # (SGLang's created_time: before tokenizing)
        received = time.perf_counter() if engine.config.zero_cost else None
        reqs = parse_generate(body, engine.config.tool_call_format,
                              engine.config.reasoning_format)
        for r in reqs:
            engine.validate(r)
    except json.JSONDecodeError:
        return _error(400, "request body is not valid JSON")
    except (BadRequest, ValueError) as exc:
        return _error(400, str(exc))
    top = int(body.get("top_logprobs_num") or 0) if body.get("return_logprob") else None
    running = request.app[_RUNNING]
    await running.wait()
    if not body.get("stream"):
        finals: dict[int, dict[str, Any]] = {}
        async for payload in _merged(engine, reqs, top, finals_only=True, received=received):
            finals[payload.get("index", 0)] = payload
        if len(reqs) == 1:
            return web.json_response(finals[0])
        return web.json_response([finals[i] for i in range(len(reqs))])
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                       "Cache-Control": "no-cache"})
    try:
        await resp.prepare(request)
    except ConnectionResetError:  # the client left before its stream began (a worker that
        return resp  # cut the call): nothing to run (aiohttp logged it as an error)
    # SGLang streams cumulative text by default (sim_engine.incremental_streaming_output:
    # as its --incremental-streaming-output, each event's new text only). Each
    # event is written when produced, but the last sample's final event goes out with the
    # [DONE] line and the end of the chunked body in one write (two socket writes fewer
    # per request, and the client finds the body ended when it reads [DONE], so its
    # connection goes back to its pool; every sample ends with a finished event, an
    # aborted one too).
    finished, last = 0, len(reqs)
    async with contextlib.aclosing(_merged(engine, reqs, top,
                                           engine.config.incremental_streaming_output,
                                           received=received)
                                   ) as payloads:
        try:
            async for payload in payloads:
                await running.wait()
                event = b"data: " + json.dumps(payload).encode() + b"\n\n"
                finished += payload["meta_info"]["finish_reason"] is not None
                if finished == last:
                    await resp.write_eof(event + b"data: [DONE]\n\n")
                else:
                    await resp.write(event)
        except ConnectionResetError:  # the client left mid-stream (SGLang aborts its requests)
            pass  # closing the payloads ends the samples still running in the engine
    return resp


async def abort_request(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except json.JSONDecodeError:
        return _error(400, "request body is not valid JSON")
    if isinstance(body, dict) and body.get("abort_all") is True:  # SGLang's AbortReq field
        request.app[_ENGINE].abort_all()
        return web.Response(status=200)
    rid = body.get("rid") if isinstance(body, dict) else None
    if not rid:
        return _error(400, "rid (or abort_all) is required")
    request.app[_ENGINE].abort(str(rid))
    return web.Response(status=200)


async def health(request: web.Request) -> web.Response:
    return web.Response(status=200)


async def health_generate(request: web.Request) -> web.Response:
    await request.app[_RUNNING].wait()
    engine = request.app[_ENGINE]
    async for _ in engine.generate(SimRequest(rid=HEALTH_CHECK_RID + uuid.uuid4().hex,
                                              prompt_ids=[1], max_new_tokens=1)):
        pass
    return web.Response(status=200)


async def server_info(request: web.Request) -> web.Response:
    engine = request.app[_ENGINE]
    cfg, p = engine.config, engine.params
    return web.json_response({
        "model_path": cfg.model, "served_model_name": cfg.model, "simulated": True,
        "engine": "ostinato-sim", "profile": engine.profile.name,
        "enable_priority_scheduling": p.enable_priority,
        "priority_scheduling_preemption_threshold": p.preemption_threshold,
        "schedule_policy": p.schedule_policy, "max_total_num_tokens": p.max_total_tokens,
        "chunked_prefill_size": p.chunked_prefill_size,
        "max_running_requests": p.max_running_requests, "page_size": p.block_size,
        "time_scale": cfg.time_scale, "zero_cost": cfg.zero_cost,
        "incremental_streaming_output": cfg.incremental_streaming_output,
        # as SGLang's server_args say it: the sim gates its grammars as one launched with
        # --reasoning-parser of its reasoning format (workers/sim/reasoning_gate.py)
        "reasoning_parser": cfg.reasoning_format or None,
    })


async def model_info(request: web.Request) -> web.Response:
    cfg = request.app[_ENGINE].config
    return web.json_response({"model_path": cfg.model, "is_generation": True, "simulated": True})


async def models(request: web.Request) -> web.Response:
    """GET /v1/models as SGLang's server answers it: the served model, its context window."""
    cfg = request.app[_ENGINE].config
    return web.json_response({"object": "list", "data": [{
        "id": cfg.model, "object": "model", "created": _STARTED, "owned_by": "sglang",
        "root": cfg.model, "max_model_len": cfg.context_length, "simulated": True}]})


async def flush_cache(request: web.Request) -> web.Response:
    if not request.app[_ENGINE].flush_cache():  # as SGLang: only when no request is running
        return web.Response(status=400, text="Cache not flushed: requests are running.\n")
    return web.Response(text="Cache flushed.\n")


async def debug_hang(request: web.Request) -> web.Response:
    """Test hook: {"hang": true} makes the engine hang, {"hang": false} lets it go on."""
    try:
        body = await request.json()
    except json.JSONDecodeError:
        return _error(400, "request body is not valid JSON")
    if not isinstance(body, dict) or not isinstance(body.get("hang"), bool):
        return _error(400, "hang (true or false) is required")
    running = request.app[_RUNNING]
    if body["hang"]:
        running.clear()
        log.warning("sim engine hangs (debug endpoint)")
    else:
        running.set()
        log.info("sim engine goes on (debug endpoint)")
    return web.json_response({"hang": body["hang"]})


def build_app(config: SimEngineConfig) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024,
                          middlewares=[tracing_middleware({"/generate"})])
    engine = app[_ENGINE] = RealtimeSimEngine(config)
    app[_RUNNING] = asyncio.Event()
    app[_RUNNING].set()
    if config.debug_endpoints:
        app.add_routes([web.post("/_debug/hang", debug_hang)])
    app.add_routes([
        web.post("/generate", generate),
        web.post("/abort_request", abort_request),
        web.get("/health", health),
        web.get("/health_generate", health_generate),
        web.get("/get_server_info", server_info),
        web.get("/get_model_info", model_info),
        web.get("/v1/models", models),
        web.post("/flush_cache", flush_cache),
        web.get("/metrics", metrics_handler(sim_engine_registry(engine))),
    ])
    return app


async def serve(config: SimEngineConfig, port_file: str | None = None) -> None:
    import signal

    app = build_app(config)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port)
    await site.start()
    port = runner.addresses[0][1]
    url = f"http://{config.host}:{port}"
    freeze_after_start()
    write_port_file(port_file, port=port, address=url, metrics_address=f"{config.host}:{port}")
    log.info("sim engine serving (SIMULATED SGLang API)", url=url, model=config.model,
             profile=config.profile)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
    app[_ENGINE].close()
