"""`ostinato sim-engine`: the sim engine behind SGLang's native HTTP API.

Endpoints and fields follow SGLang's http_server.py / io_struct.py GenerateReqInput:
POST /generate (JSON or SSE `data: {...}` lines ending with `data: [DONE]`),
POST /abort_request, GET /health, GET /health_generate, GET /get_server_info,
GET /get_model_info, POST /flush_cache, GET /metrics. Every response says it is simulated.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import structlog
from aiohttp import web

from ostinato.config import SimEngineConfig
from ostinato.serving import write_port_file
from workers.sim.engine import RealtimeSimEngine, SimOutput, SimRequest
from workers.sim.tokenizer import tokenize

log = structlog.get_logger(__name__)

DEFAULT_MAX_NEW_TOKENS = 128  # SGLang's SamplingParams default
_ENGINE = web.AppKey("engine", RealtimeSimEngine)


class BadRequest(ValueError):
    pass


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": {"message": message}}, status=status)


def parse_generate(body: Any) -> SimRequest:
    """Validates a /generate body; raises BadRequest naming the field."""
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    text, input_ids = body.get("text"), body.get("input_ids")
    if isinstance(text, list) or (input_ids and isinstance(input_ids[0], list)):
        raise BadRequest("batched requests are not supported by the sim engine")
    if text is None and input_ids is None:
        raise BadRequest("either text or input_ids must be provided")
    if text is not None and not isinstance(text, str):
        raise BadRequest("text must be a string")
    if input_ids is not None and not all(isinstance(t, int) for t in input_ids):
        raise BadRequest("input_ids must be a list of integers")
    sp = body.get("sampling_params") or {}
    if not isinstance(sp, dict):
        raise BadRequest("sampling_params must be an object")
    max_new = sp.get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS)
    if not isinstance(max_new, int) or max_new < 0:
        raise BadRequest("sampling_params.max_new_tokens must be a non-negative integer")
    n = sp.get("n", 1)
    if n != 1:
        raise BadRequest("sampling_params.n > 1 is not supported by this sim engine yet")
    stop = sp.get("stop") or ()
    stop = (stop,) if isinstance(stop, str) else tuple(stop)
    priority = body.get("priority")
    if priority is not None and not isinstance(priority, int):
        raise BadRequest("priority must be an integer")
    seed = sp.get("sampling_seed") or 0
    return SimRequest(
        rid=str(body.get("rid") or uuid.uuid4().hex),
        prompt_ids=list(input_ids) if input_ids is not None else tokenize(text or ""),
        max_new_tokens=max_new,
        stop=stop,
        ignore_eos=bool(sp.get("ignore_eos", False)),
        seed=int(seed),
        priority=priority or 0,
        cache_salt=str(body.get("cache_salt") or ""),
    )


def _payload(rid: str, out: SimOutput) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "id": rid,
        "finish_reason": out.finish_reason,
        "prompt_tokens": out.prompt_tokens,
        "completion_tokens": out.completion_tokens,
        "cached_tokens": out.cached_tokens,
        "simulated": True,
    }
    if out.e2e_latency is not None:
        meta["e2e_latency"] = out.e2e_latency
    return {"text": out.text, "meta_info": meta}


async def generate(request: web.Request) -> web.StreamResponse:
    engine = request.app[_ENGINE]
    try:
        body = await request.json()
        req = parse_generate(body)
    except json.JSONDecodeError:
        return _error(400, "request body is not valid JSON")
    except BadRequest as exc:
        return _error(400, str(exc))
    if not body.get("stream"):
        last: SimOutput | None = None
        async for out in engine.generate(req):
            last = out
        assert last is not None
        return web.json_response(_payload(req.rid, last))
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                       "Cache-Control": "no-cache"})
    await resp.prepare(request)
    try:
        async for out in engine.generate(req):
            # SGLang streams cumulative text by default (no --incremental-streaming-output).
            await resp.write(b"data: " + json.dumps(_payload(req.rid, out)).encode() + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
    except (ConnectionResetError, asyncio.CancelledError):
        engine.abort(req.rid)  # the client went away: SGLang aborts the request too
        raise
    return resp


async def abort_request(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except json.JSONDecodeError:
        return _error(400, "request body is not valid JSON")
    rid = body.get("rid") if isinstance(body, dict) else None
    if not rid:
        return _error(400, "rid is required")
    request.app[_ENGINE].abort(str(rid))
    return web.Response(status=200)


async def health(request: web.Request) -> web.Response:
    return web.Response(status=200)


async def health_generate(request: web.Request) -> web.Response:
    engine = request.app[_ENGINE]
    async for _ in engine.generate(SimRequest(rid="health-" + uuid.uuid4().hex,
                                              prompt_ids=[1], max_new_tokens=1)):
        pass
    return web.Response(status=200)


async def server_info(request: web.Request) -> web.Response:
    cfg = request.app[_ENGINE].config
    return web.json_response({
        "model_path": cfg.model, "served_model_name": cfg.model, "simulated": True,
        "engine": "ostinato-sim", "enable_priority_scheduling": True,
        "timing_model": {"prefill_s_per_token": cfg.prefill_s_per_token,
                         "decode_s_per_token": cfg.decode_s_per_token,
                         "overhead_s": cfg.overhead_s, "zero_cost": cfg.zero_cost},
    })


async def model_info(request: web.Request) -> web.Response:
    cfg = request.app[_ENGINE].config
    return web.json_response({"model_path": cfg.model, "is_generation": True, "simulated": True})


async def flush_cache(request: web.Request) -> web.Response:
    request.app[_ENGINE].flush_cache()
    return web.Response(text="Cache flushed.\n")


async def metrics(request: web.Request) -> web.Response:
    c = request.app[_ENGINE].counters
    model = request.app[_ENGINE].config.model
    lines = []
    for name, kind, value in [
        ("sglang:num_running_reqs", "gauge", c.running),
        ("sglang:prompt_tokens_total", "counter", c.prompt_tokens),
        ("sglang:generation_tokens_total", "counter", c.generation_tokens),
        ("sglang:cached_tokens_total", "counter", c.cached_tokens),
        ("sglang:num_requests_total", "counter", c.completed),
        ("sglang:num_aborted_requests_total", "counter", c.aborted),
    ]:
        lines += [f"# TYPE {name} {kind}", f'{name}{{model_name="{model}",simulated="true"}} {value}']
    return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")


def build_app(config: SimEngineConfig) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[_ENGINE] = RealtimeSimEngine(config)
    app.add_routes([
        web.post("/generate", generate),
        web.post("/abort_request", abort_request),
        web.get("/health", health),
        web.get("/health_generate", health_generate),
        web.get("/get_server_info", server_info),
        web.get("/get_model_info", model_info),
        web.post("/flush_cache", flush_cache),
        web.get("/metrics", metrics),
    ])
    return app


async def serve(config: SimEngineConfig, port_file: str | None = None) -> None:
    import signal

    runner = web.AppRunner(build_app(config), handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port)
    await site.start()
    port = runner.addresses[0][1]
    url = f"http://{config.host}:{port}"
    write_port_file(port_file, port=port, address=url)
    log.info("sim engine serving (SIMULATED SGLang API)", url=url, model=config.model)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
