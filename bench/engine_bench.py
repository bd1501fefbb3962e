"""`ostinato bench engine`: a request-level serving benchmark in the manner of SGLang's
`bench_serving` (python/sglang/benchmark/serving.py), against any server that speaks SGLang's
native API (real SGLang, or the sim engine over HTTP), or against the sim engine's core in
virtual time (SIMULATED, no HTTP, no wall clock).

Workload: bench_serving's random dataset: `num_prompts` requests, input and output lengths
uniform in [len * range_ratio, len], random token ids (sent as `input_ids`, so no tokenizer
is involved), outputs of exactly their length (`ignore_eos`); Poisson arrivals at
`request_rate` (inf: all at once), at most `max_concurrency` in flight. Results use
bench_serving's field names (duration, completed, total_input_tokens, request_throughput,
output_throughput, mean/median/std/p90/p95/p99 of ttft, tpot, itl and e2e_latency in ms).
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workers.sglang_client import EngineRequest, SGLangClient


@dataclass(frozen=True)
class BenchRequest:
    arrival_s: float
    input_ids: list[int]
    output_len: int


@dataclass
class Outcome:
    input_len: int
    output_len: int = 0
    ttft_s: float = 0.0
    latency_s: float = 0.0
    itl_s: list[float] = field(default_factory=list)
    success: bool = False
    error: str = ""
    simulated: bool = False  # the engine said its answer was simulated (Ostinato's sim)


def random_requests(num_prompts: int, input_len: int, output_len: int, range_ratio: float,
                    request_rate: float, seed: int, vocab_size: int) -> list[BenchRequest]:
    if num_prompts < 1 or input_len < 1 or output_len < 1:
        raise ValueError("--num-prompts, --random-input-len and --random-output-len must be >= 1")
    if not 0.0 <= range_ratio <= 1.0:
        raise ValueError("--random-range-ratio must be in [0, 1]")
    if request_rate <= 0:
        raise ValueError("--request-rate must be positive (inf: all at once)")
    rng = random.Random(seed)
    t, out = 0.0, []
    for _ in range(num_prompts):
        n_in = rng.randint(max(1, int(input_len * range_ratio)), input_len)
        n_out = rng.randint(max(1, int(output_len * range_ratio)), output_len)
        out.append(BenchRequest(t, [rng.randrange(100, vocab_size) for _ in range(n_in)], n_out))
        if not math.isinf(request_rate):
            t += rng.expovariate(request_rate)
    return out


def _stats(name: str, values_s: list[float]) -> dict[str, float]:
    ms = sorted(v * 1000 for v in values_s) or [0.0]

    def pct(p: float) -> float:
        return ms[min(len(ms) - 1, max(0, math.ceil(p / 100 * len(ms)) - 1))]

    return {f"mean_{name}_ms": statistics.fmean(ms), f"median_{name}_ms": statistics.median(ms),
            f"std_{name}_ms": statistics.pstdev(ms), f"p90_{name}_ms": pct(90),
            f"p95_{name}_ms": pct(95), f"p99_{name}_ms": pct(99)}


def metrics(outcomes: list[Outcome], duration_s: float) -> dict[str, Any]:
    ok = [o for o in outcomes if o.success]
    total_in = sum(o.input_len for o in ok)
    total_out = sum(o.output_len for o in ok)
    tpots = [(o.latency_s - o.ttft_s) / (o.output_len - 1) for o in ok if o.output_len > 1]
    duration_s = max(duration_s, 1e-9)
    return {
        "duration": duration_s, "completed": len(ok), "failed": len(outcomes) - len(ok),
        "total_input_tokens": total_in, "total_output_tokens": total_out,
        "request_throughput": len(ok) / duration_s, "input_throughput": total_in / duration_s,
        "output_throughput": total_out / duration_s,
        "total_throughput": (total_in + total_out) / duration_s,
        **_stats("e2e_latency", [o.latency_s for o in ok]), **_stats("ttft", [o.ttft_s for o in ok]),
        **_stats("tpot", tpots), **_stats("itl", [x for o in ok for x in o.itl_s]),
        "concurrency": sum(o.latency_s for o in ok) / duration_s,
    }


async def run_http(url: str, reqs: list[BenchRequest], max_concurrency: int | None,
                   timeout_s: float = 600.0) -> tuple[list[Outcome], float]:
    """Streams every request from the server; token times are chunk arrival times (SGLang
    streams one chunk a decode step)."""
    client = SGLangClient(url, timeout_s=timeout_s)
    gate = asyncio.Semaphore(max_concurrency or len(reqs))
    start = time.perf_counter()

    async def one(i: int, r: BenchRequest) -> Outcome:
        await asyncio.sleep(max(0.0, r.arrival_s - (time.perf_counter() - start)))
        out = Outcome(len(r.input_ids))
        async with gate:
            sent = last = time.perf_counter()
            try:
                async for o in client.generate(EngineRequest(
                        rid=f"bench-{i}-{time.time_ns()}", text="", input_ids=r.input_ids,
                        sampling_params={"max_new_tokens": r.output_len, "ignore_eos": True,
                                         "temperature": 0})):
                    now = time.perf_counter()
                    if o.completion_tokens and not out.output_len:
                        out.ttft_s = now - sent
                    elif o.completion_tokens > out.output_len:
                        out.itl_s.append(now - last)
                    if o.completion_tokens > out.output_len:
                        last = now
                    out.output_len = o.completion_tokens
                    out.simulated = out.simulated or o.simulated
                out.latency_s = time.perf_counter() - sent
                out.success = out.output_len > 0
            except Exception as exc:  # a failed request is counted, not fatal
                out.error = f"{type(exc).__name__}: {exc}"
        return out

    try:
        outcomes = await asyncio.gather(*(one(i, r) for i, r in enumerate(reqs)))
    finally:
        await client.close()
    return list(outcomes), time.perf_counter() - start


def run_virtual(profile: str, reqs: list[BenchRequest], max_concurrency: int | None,
                max_running_requests: int = 0) -> tuple[list[Outcome], float]:
    """The sim engine's core in virtual time (SIMULATED): the same requests, the same metrics."""
    from ostinato.config import SimEngineConfig
    from workers.sim.cost_model import CostModel, load_profile
    from workers.sim.engine import engine_params
    from workers.sim.scheduler import Req, SimEngineCore
    from workers.sim.text import FixedLengthDecoder

    p = load_profile(profile)
    core = SimEngineCore(CostModel(p), engine_params(
        SimEngineConfig(profile=profile, max_running_requests=max_running_requests), p))
    outcomes = [Outcome(len(r.input_ids)) for r in reqs]
    submitted = [0.0] * len(reqs)
    last_token = [0.0] * len(reqs)
    limit = max_concurrency or len(reqs)
    pending, in_flight, done, now = 0, 0, 0, 0.0
    while done < len(reqs):
        arrival = reqs[pending].arrival_s if pending < len(reqs) and in_flight < limit else math.inf
        engine_at = core.next_event_time()
        if arrival <= (math.inf if engine_at is None else engine_at):
            now = max(now, arrival)
            r = reqs[pending]
            core.submit(Req(rid=str(pending), prompt_ids=r.input_ids,
                            decoder=FixedLengthDecoder(r.output_len, 1 << 40)), now)
            submitted[pending] = now
            pending, in_flight = pending + 1, in_flight + 1
            continue
        assert engine_at is not None
        now = engine_at
        for ev in core.step(now):
            i = int(ev.rid)
            out = outcomes[i]
            if ev.new_tokens:
                steps = ev.new_tokens
                if out.output_len == 0:  # the first token ends prefill
                    first = ev.first_token_at if ev.first_token_at is not None else ev.time
                    out.ttft_s = first - submitted[i]
                    last_token[i] = first
                    steps -= 1
                if steps:  # a decode stretch: its steps are evenly spaced
                    out.itl_s += [(ev.time - last_token[i]) / steps] * steps
                    last_token[i] = ev.time
                out.output_len += ev.new_tokens
            if ev.finished:
                out.latency_s = ev.time - submitted[i]
                out.success = (ev.finish_reason or {}).get("type") != "abort"
                in_flight, done = in_flight - 1, done + 1
    return outcomes, now


def engine_command(args: Any) -> dict[str, Any]:
    reqs = random_requests(args.num_prompts, args.random_input_len, args.random_output_len,
                           args.random_range_ratio, args.request_rate, args.seed, args.vocab_size)
    concurrency = args.max_concurrency or None
    if args.virtual:
        outcomes, duration = run_virtual(args.profile, reqs, concurrency, args.max_running_requests)
        target = {"backend": "ostinato-sim-virtual", "profile": args.profile, "simulated": True}
    else:
        outcomes, duration = asyncio.run(run_http(args.url, reqs, concurrency))
        # labelled by what the engine said of its answers (a review found a run against a
        # sim engine unlabelled)
        target = {"backend": "sglang-native", "url": args.url,
                  "simulated": any(o.simulated for o in outcomes)}
    result = {**target, "dataset_name": "random", "num_prompts": args.num_prompts,
              "random_input_len": args.random_input_len,
              "random_output_len": args.random_output_len,
              "random_range_ratio": args.random_range_ratio,
              "request_rate": args.request_rate if not math.isinf(args.request_rate) else "inf",
              "max_concurrency": concurrency, "seed": args.seed,
              **metrics(outcomes, duration)}
    errors = sorted({o.error for o in outcomes if o.error})
    if errors:
        result["errors"] = errors[:5]
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return result
