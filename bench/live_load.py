"""The open-loop load generator of `ostinato bench live --rates`: its own process, sending
one-call programs to the gateway at a fixed rate.

Sends are scheduled by the wall clock (send i at start + i / rate) and never wait for
answers: a send that the generator itself makes late still counts from its scheduled time,
so queueing anywhere (mesh or generator) shows in the latency instead of slowing the
offered rate (no coordinated omission).

Modes, each a one-call program:
- `program`: StartProgram, CallWhole, EndProgram (three gateway RPCs, as the SDK's
  `async with client.program()` and `program.call` do);
- `call`: one CallWhole without a program id (the gateway runs it as a program of its own);
- `http`: one POST /v1/chat/completions (OpenAI-compatible, a program created implicitly);
- `engine`: no mesh, the baseline: one POST /generate (SGLang's native API) straight to the
  mesh's engines, in turn, as a client that runs its engines itself would send it. What the
  mesh adds is a mode's latency less this one's at the same rate (LiteLLM's "overhead" is
  read so: through the proxy against straight to the provider).

overhead_ms = end-to-end latency from the scheduled send minus the engine's reported
service time, SGLang's meta_info e2e_latency (gRPC modes and `engine`; the HTTP answer does
not carry it, so the HTTP figure is the end-to-end latency). The zero-cost sim engine's is
its own handling of the request, from its body parsed to its answer ready (its model time
is 0), as SGLang's runs from the request's state, made before tokenizing, to its output
handled; before round 23 (docs/bench/live/results.md) it reported 0, so its handling
counted as the mesh's.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from bench.results import percentile
from ostinato.event_loop import run as run_loop

MODES = ("program", "call", "http", "engine")
ENGINE_MODE = "engine"  # the baseline without the mesh
SUSTAINED_COMPLETED = 0.95  # completed calls/s at least this share of the offered rate
SUSTAINED_P99_MS = 500.0  # and p99 latency (scheduled send to answer) at most this
# and latency not growing: the median latency of the calls sent in the run's second half at
# most this much above the first half's (`latency_trend_ms`). A rate a little past capacity
# completes nearly all its calls in a short run while its queue grows: a review found one
# at 1.03x capacity read sustained after 10 s (latency 71 -> 203 ms), not after 60 s.
SUSTAINED_TREND_MS = 25.0
PROMPT = "Classify this ticket: the invoice total looks wrong."


def send_schedule(rate: float, duration_s: float, start: float = 0.0) -> list[float]:
    """When each call is sent: open loop at `rate` per second for `duration_s`."""
    if rate <= 0 or duration_s <= 0:
        raise ValueError("rate and duration must be positive")
    return [start + i / rate for i in range(round(rate * duration_s))]


@dataclass(frozen=True)
class Outcome:
    status: str  # "OK", or the gRPC status name / HTTP status of the failure
    latency_ms: float  # from the scheduled send to the last answer
    overhead_ms: float  # latency minus the engine's reported service time
    done_at: float  # wall clock at the answer


def summarize(rate: float, sends: list[float], outcomes: list[Outcome]) -> dict[str, Any]:
    """One rate's row: offered and completed calls/s, errors by status, overhead and latency
    percentiles over the completed calls, and whether the rate was sustained."""
    ok = [o for o in outcomes if o.status == "OK"]
    errors: dict[str, int] = {}
    for o in outcomes:
        if o.status != "OK":
            errors[o.status] = errors.get(o.status, 0) + 1
    # from the first send to the last answer, or to the end of the send window if later
    span = (max(max(o.done_at for o in ok), sends[0] + len(sends) / rate) - sends[0]
            if ok and sends else 0.0)
    completed_per_s = len(ok) / span if span > 0 else 0.0
    overhead = [o.overhead_ms for o in ok]
    latency = [o.latency_ms for o in ok]
    p99_latency = percentile(latency, 0.99)
    trend = latency_trend_ms(sends, outcomes)
    return {
        "offered_per_s": rate, "sent": len(sends), "completed": len(ok),
        "completed_per_s": round(completed_per_s, 1), "errors": errors,
        "overhead_ms": {q: round(percentile(overhead, p), 3)
                        for q, p in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))},
        "latency_ms_p99": round(p99_latency, 3),
        # end to end, whatever the engine reports (comparable across rounds: round 23's sim
        # engine reports its own handling as its service time, earlier ones 0)
        "latency_ms": {q: round(percentile(latency, p), 3)
                       for q, p in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))},
        "latency_trend_ms": round(trend, 3),
        "sustained": bool(ok) and not errors
        and completed_per_s >= SUSTAINED_COMPLETED * rate and p99_latency <= SUSTAINED_P99_MS
        and trend <= SUSTAINED_TREND_MS,
    }


def latency_trend_ms(sends: list[float], outcomes: list[Outcome]) -> float:
    """How far the latency grew over the run: the median latency of the answered calls sent
    in its second half less that of those sent in its first (0 where a half has none)."""
    if not sends:
        return 0.0
    middle = sends[len(sends) // 2]
    halves: tuple[list[float], list[float]] = ([], [])
    for o in outcomes:
        if o.status == "OK":
            halves[o.done_at - o.latency_ms / 1000 >= middle].append(o.latency_ms)
    if not halves[0] or not halves[1]:
        return 0.0
    return percentile(halves[1], 0.5) - percentile(halves[0], 0.5)


async def _grpc_sender(gateway: str, mode: str, timeout_s: float) -> Any:
    import grpc

    from ostinato.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc

    channel = grpc.aio.insecure_channel(gateway)
    stub = gateway_pb2_grpc.GatewayStub(channel)
    message = common_pb2.Message(role="user", content=PROMPT)

    async def send() -> tuple[str, float]:
        call = common_pb2.CallSpec(messages=[message], call_id=uuid.uuid4().hex[:16])
        call.sampling.max_new_tokens, call.sampling.temperature = 8, 1.0  # not cacheable
        try:
            program_id = ""
            if mode == "program":
                opts = common_pb2.ProgramOptions(program_id=uuid.uuid4().hex,
                                                 program_class="bench-live")
                program_id = (await stub.StartProgram(gateway_pb2.StartProgramRequest(
                    options=opts), timeout=timeout_s)).program_id
            # the answer whole, one message, as the SDK's non-streamed call asks for it
            chunk = await stub.CallWhole(gateway_pb2.CallRequest(program_id=program_id, call=call),
                                         timeout=timeout_s)
            engine_s = chunk.result.timings.engine_s
            if mode == "program":
                await stub.EndProgram(gateway_pb2.EndProgramRequest(program_id=program_id),
                                      timeout=timeout_s)
        except grpc.aio.AioRpcError as exc:
            return exc.code().name, 0.0
        return "OK", engine_s

    return send, channel.close


async def _http_sender(base: str, timeout_s: float) -> Any:
    import aiohttp

    session = aiohttp.ClientSession(base_url=f"http://{base}",
                                    timeout=aiohttp.ClientTimeout(total=timeout_s),
                                    connector=aiohttp.TCPConnector(limit=0))
    body = {"model": "", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 8,
            "temperature": 1.0}  # sampled: never an answer-cache hit

    async def send() -> tuple[str, float]:
        try:
            async with session.post("/v1/chat/completions", json=body) as resp:
                await resp.read()
                return ("OK" if resp.status == 200 else f"HTTP {resp.status}"), 0.0
        except (aiohttp.ClientError, TimeoutError) as exc:
            return type(exc).__name__, 0.0

    return send, session.close


async def _engine_sender(bases: str, timeout_s: float) -> Any:
    import itertools

    import aiohttp

    # the calls spread over the engines in turn, as the mesh spreads them over its workers
    urls = itertools.cycle([b.rstrip("/") + "/generate" for b in bases.split(",")])
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s),
                                    connector=aiohttp.TCPConnector(limit=0))
    body = {"text": PROMPT, "sampling_params": {"max_new_tokens": 8, "temperature": 1.0}}

    async def send() -> tuple[str, float]:
        try:
            async with session.post(next(urls), json=body) as resp:
                if resp.status != 200:
                    await resp.read()
                    return f"HTTP {resp.status}", 0.0
                answer = await resp.json()
                return "OK", float(answer["meta_info"].get("e2e_latency", 0.0))
        except (aiohttp.ClientError, TimeoutError) as exc:
            return type(exc).__name__, 0.0

    return send, session.close


async def _drive(target: str, mode: str, rate: float, duration_s: float,
                 timeout_s: float, warmup: int) -> dict[str, Any]:
    if mode == "http":
        send, close = await _http_sender(target, timeout_s)
    elif mode == ENGINE_MODE:
        send, close = await _engine_sender(target, timeout_s)
    else:
        send, close = await _grpc_sender(target, mode, timeout_s)
    try:
        for _ in range(warmup):  # connections up, caches and code paths warm
            await send()
        outcomes: list[Outcome] = []

        async def one(scheduled: float) -> None:
            status, engine_s = await send()
            now = time.perf_counter()
            latency = (now - scheduled) * 1000
            outcomes.append(Outcome(status, latency, latency - engine_s * 1000, now))

        sends = send_schedule(rate, duration_s, time.perf_counter() + 0.05)
        tasks = []
        for at in sends:
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(at)))
        await asyncio.gather(*tasks)
        return summarize(rate, sends, outcomes)
    finally:
        await close()


def _run(target: str, mode: str, rate: float, duration_s: float, timeout_s: float,
         warmup: int, event_loop: str) -> dict[str, Any]:
    cpu = time.process_time()
    row = run_loop(_drive(target, mode, rate, duration_s, timeout_s, warmup), event_loop)
    return {**row, "loadgen_cpu_s": time.process_time() - cpu}  # warm-up calls included


def run_rate(target: str, mode: str, rate: float, duration_s: float, *,
             timeout_s: float = 10.0, warmup: int = 20,
             event_loop: str = "uvloop") -> dict[str, Any]:
    """One open-loop run at `rate`, from a process of its own (spawned, so nothing of the
    caller's event loop or gRPC state comes along) on `event_loop` (ostinato/event_loop.py).
    `target`: the gateway's gRPC address, its HTTP host:port for mode http, or the engines'
    URLs, comma separated, for mode engine (sent to in turn)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_run, target, mode, rate, duration_s, timeout_s, warmup,
                           event_loop).result()
