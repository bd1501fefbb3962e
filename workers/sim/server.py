"""`ostinato sim-engine`: the sim engine behind SGLang's native HTTP API.

Endpoints and fields follow SGLang's http_server.py / io_struct.py GenerateReqInput:
POST /generate (JSON or SSE `data: {...}` lines ending with `data: [DONE]`),
POST /abort_request, GET /health, GET /health_generate, GET /get_server_info,
GET /get_model_info, POST /flush_cache, GET /metrics. Every response says it is simulated.
With `debug_endpoints` (tests only), POST /_debug/hang {"hang": true} makes the engine hang:
new requests, /health_generate and running streams wait until {"hang": false}.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import structlog
from aiohttp import web

from ostinato.config import SimEngineConfig
from ostinato.serving import write_port_file
from tracing.http_middleware import tracing_middleware
from tracing.metrics_http import metrics_handler
from workers.sim.behavior import scripted_answer, thinking
from workers.sim.engine import HEALTH_CHECK_RID, RealtimeSimEngine, SimRequest
from workers.sim.json_instance import UnsupportedSchema
from workers.sim.metrics import sim_engine_registry
from workers.sim.scheduler import EngineEvent
from workers.sim.tokenizer import detokenize, tokenize

log = structlog.get_logger(__name__)

DEFAULT_MAX_NEW_TOKENS = 128  # SGLang's SamplingParams default
_ENGINE = web.AppKey("engine", RealtimeSimEngine)
_RUNNING = web.AppKey("running", asyncio.Event)  # cleared while the engine hangs (tests)


class BadRequest(ValueError):
    pass


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": {"message": message}}, status=status)


_UNSUPPORTED_CONSTRAINTS = ("regex", "ebnf", "structural_tag")


def _penalty(sp: dict[str, Any], name: str) -> None:
    value = sp.get(name, 0.0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not -2.0 <= value <= 2.0:
        raise BadRequest(f"sampling_params.{name} must be a number in [-2, 2]")


SIM_VOCAB_SIZE = 1 << 64  # the sim tokenizer's ids are 8-byte chunks (workers/sim/tokenizer.py)


def _sampling_ranges(sp: dict[str, Any], max_new: int) -> int:
    """top_k, min_p, repetition_penalty and min_new_tokens checked in SGLang's words (its
    SamplingParams.verify); returns min_new_tokens, which the SIMULATED text follows (no EOS
    before it) as it does not follow the other three."""
    values = {"top_k": -1, "min_p": 0.0, "repetition_penalty": 1.0, "min_new_tokens": 0}
    for name, default in values.items():
        value = sp.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or (
                isinstance(default, int) and not float(value).is_integer()):
            raise BadRequest(f"sampling_params.{name} must be a number")
        values[name] = value
    top_k, min_p, penalty, least = values.values()
    if top_k != -1 and top_k < 1:
        raise BadRequest(f"top_k must be -1 (disable) or at least 1, got {top_k}.")
    if not 0.0 <= min_p <= 1.0:
        raise BadRequest(f"min_p must be in [0, 1], got {min_p}.")
    if not 0.0 < penalty <= 2.0:
        raise BadRequest("repetition_penalty must be in (0, 2] (1.0 = no penalty), got "
                         f"{penalty}.")
    if not 0 <= least <= max_new:
        raise BadRequest(f"min_new_tokens must be in [0, max_new_tokens({max_new})], got "
                         f"{least}.")
    return int(least)


def _logit_bias(sp: dict[str, Any]) -> None:
    """Checked as SGLang checks it (keys are token ids in the vocabulary). The SIMULATED text
    does not follow it, as it does not follow temperature or top_p."""
    bias = sp.get("logit_bias")
    if bias is None:
        return
    if not isinstance(bias, dict):
        raise BadRequest("sampling_params.logit_bias must be an object")
    for token_id, value in bias.items():
        try:
            tid = int(token_id)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        if not 0 <= tid < SIM_VOCAB_SIZE:  # SGLang's own check, word for word
            raise BadRequest(f"logit_bias must has keys in [0, {SIM_VOCAB_SIZE - 1}], got "
                             f"{token_id}.")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BadRequest(f"sampling_params.logit_bias[{token_id}] must be a number")


def _script(prompt: str, sp: dict[str, Any], tool_format: str, seed: int) -> str | None:
    """What the simulated model answers (workers/sim/behavior.py); constraints it cannot
    honour are refused, never ignored."""
    for name in _UNSUPPORTED_CONSTRAINTS:
        if sp.get(name) is not None:
            raise BadRequest(f"sampling_params.{name} is not supported by the sim engine "
                             "(json_schema is)")
    schema = sp.get("json_schema")
    if schema is not None and not isinstance(schema, str):
        raise BadRequest("sampling_params.json_schema must be a JSON string")
    try:
        return scripted_answer(prompt, json_schema=schema, tool_format=tool_format, seed=seed)
    except UnsupportedSchema as exc:
        raise BadRequest(f"sampling_params.json_schema: {exc}") from exc
    except ValueError as exc:
        raise BadRequest(f"sampling_params.json_schema is not valid JSON: {exc}") from exc


def parse_generate(body: Any, tool_format: str = "hermes",
                   reasoning_format: str = "") -> list[SimRequest]:
    """Validates a /generate body; one SimRequest per sample (n); BadRequest names the field.

    The simulated model reads its prompt (from `text`, or `input_ids` decoded as a real
    engine's model sees them) to decide on tool calls, answering in `tool_format`; a
    thinking model (`reasoning_format`) thinks before answering a chat turn."""
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    text, input_ids = body.get("text"), body.get("input_ids")
    if input_ids is not None and not isinstance(input_ids, list):
        raise BadRequest("input_ids must be a list of integers")
    if isinstance(text, list) or (input_ids and isinstance(input_ids[0], list)):
        raise BadRequest("batched requests are not supported by the sim engine")
    if text is None and input_ids is None:
        raise BadRequest("either text or input_ids must be provided")
    if text is not None and not isinstance(text, str):
        raise BadRequest("text must be a string")
    if input_ids is not None and not all(type(t) is int for t in input_ids):  # no bools
        raise BadRequest("input_ids must be a list of integers")
    sp = body.get("sampling_params") or {}
    if not isinstance(sp, dict):
        raise BadRequest("sampling_params must be an object")
    max_new = sp.get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS)
    if not isinstance(max_new, int) or max_new < 0:
        raise BadRequest("sampling_params.max_new_tokens must be a non-negative integer")
    n = sp.get("n", 1)
    if not isinstance(n, int) or not 1 <= n <= 64:
        raise BadRequest("sampling_params.n must be an integer from 1 to 64")
    stop = sp.get("stop") or ()
    stop = (stop,) if isinstance(stop, str) else tuple(stop)
    priority = body.get("priority")
    if priority is not None and not isinstance(priority, int):
        raise BadRequest("priority must be an integer")
    for name in ("presence_penalty", "frequency_penalty"):
        _penalty(sp, name)
    _logit_bias(sp)
    min_new = _sampling_ranges(sp, max_new)
    top = body.get("top_logprobs_num", 0)
    if not isinstance(top, int) or isinstance(top, bool) or not 0 <= top <= 20:
        raise BadRequest("top_logprobs_num must be an integer from 0 to 20")
    seed = sp.get("sampling_seed") or 0
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise BadRequest("sampling_params.sampling_seed must be an integer")
    if not -(1 << 63) <= seed < 1 << 63:  # SGLang's own check, word for word
        raise BadRequest(f"sampling_seed must be in [-2**63, 2**63 - 1], got {seed}.")
    rid = str(body.get("rid") or uuid.uuid4().hex)
    prompt = list(input_ids) if input_ids is not None else tokenize(text or "")
    prompt_text = text if text is not None else detokenize(prompt)
    return [
        SimRequest(
            rid=rid if n == 1 else f"{rid}-{i}", prompt_ids=prompt, max_new_tokens=max_new,
            stop=stop, ignore_eos=bool(sp.get("ignore_eos", False)), seed=int(seed) + i,
            min_new_tokens=min_new,
            priority=priority or 0, cache_salt=str(body.get("cache_salt") or ""),
            script=_script(prompt_text, sp, tool_format, int(seed) + i),
            preamble=thinking(prompt_text, reasoning_format, int(seed) + i),
        )
        for i in range(n)
    ]


def _logprob(token_id: int, rank: int) -> float:
    """A made-up but deterministic log probability (SIMULATED): the chosen token's is the
    highest; alternatives fall off with rank."""
    return -round(((token_id * 2654435761 + rank) % 1000) / 400.0 + rank * 0.7, 4)


def logprobs_meta(text: str, top: int) -> dict[str, Any]:
    """SGLang's meta_info logprob fields for an output: output_token_logprobs entries are
    [logprob, token_id, token_text] (return_text_in_logprobs), output_top_logprobs a list of
    such entries a position."""
    ids = tokenize(text)
    out: dict[str, Any] = {"output_token_logprobs": [
        [_logprob(t, 0), t, detokenize([t])] for t in ids]}
    if top:
        out["output_top_logprobs"] = [
            [[_logprob(t, 0), t, detokenize([t])]] + [
                [_logprob(t, r), r, f"<alt{r}>"] for r in range(1, top)] for t in ids]
    return out


def _payload(rid: str, text: str, event: EngineEvent, index: int | None,
             top_logprobs: int | None = None) -> dict[str, Any]:
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
    if top_logprobs is not None:  # cumulative, as SGLang streams them
        meta.update(logprobs_meta(text, top_logprobs))
    out: dict[str, Any] = {"text": text, "meta_info": meta}
    if index is not None:
        out["index"] = index
    return out


async def _sample(engine: RealtimeSimEngine, req: SimRequest, index: int | None,
                  top_logprobs: int | None) -> AsyncIterator[dict[str, Any]]:
    text = ""
    async for event in engine.generate(req):
        text = event.text if event.finished else text + event.delta
        yield _payload(req.rid, text, event, index, top_logprobs)


async def _merged(engine: RealtimeSimEngine, reqs: list[SimRequest],
                  top_logprobs: int | None = None) -> AsyncIterator[dict[str, Any]]:
    """Interleaves the n samples' payloads as they are produced (SGLang adds "index")."""
    if len(reqs) == 1:
        async for payload in _sample(engine, reqs[0], None, top_logprobs):
            yield payload
        return
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    async def pump(req: SimRequest, i: int) -> None:
        async for payload in _sample(engine, req, i, top_logprobs):
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
        async for payload in _merged(engine, reqs, top):
            if payload["meta_info"]["finish_reason"] is not None:
                finals[payload.get("index", 0)] = payload
        if len(reqs) == 1:
            return web.json_response(finals[0])
        return web.json_response([finals[i] for i in range(len(reqs))])
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                       "Cache-Control": "no-cache"})
    await resp.prepare(request)
    # SGLang streams cumulative text by default (no --incremental-streaming-output). Each
    # event is written when produced, but the last sample's final event goes out with the
    # [DONE] line and the end of the chunked body in one write (two socket writes fewer
    # per request, and the client finds the body ended when it reads [DONE], so its
    # connection goes back to its pool; every sample ends with a finished event, an
    # aborted one too).
    finished, last = 0, len(reqs)
    async with contextlib.aclosing(_merged(engine, reqs, top)) as payloads:
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
    rid = body.get("rid") if isinstance(body, dict) else None
    if not rid:
        return _error(400, "rid is required")
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
    })


async def model_info(request: web.Request) -> web.Response:
    cfg = request.app[_ENGINE].config
    return web.json_response({"model_path": cfg.model, "is_generation": True, "simulated": True})


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
