"""`ostinato sim-engine calibrate`: fit a profile's efficiencies to a real SGLang server.

Measures, one request at a time (so nothing queues), the server-reported `e2e_latency`
of prompts of several lengths with 1 output token (prefill) and with 1 + D tokens
(prefill + D decode steps at batch 1), then fits the profile's effective FLOP fraction,
bandwidth fraction and per-iteration overhead by minimizing squared log error, keeping
the model and hardware constants of the base profile.
"""

from __future__ import annotations

import asyncio
import json
import math
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import aiohttp
import yaml

from workers.sim.cost_model import CostModel, Profile, load_profile


@dataclass(frozen=True)
class Sample:
    prompt_tokens: int
    decode_steps: int  # 0: a prefill-only measurement
    seconds: float


def predict(cost: CostModel, s: Sample) -> float:
    t = cost.prefill_time([(0, s.prompt_tokens)])
    for j in range(1, s.decode_steps + 1):
        t += cost.decode_time(1, s.prompt_tokens + j)
    return t


def loss(cost: CostModel, samples: list[Sample]) -> float:
    return sum(math.log(max(predict(cost, s), 1e-9) / s.seconds) ** 2 for s in samples)


def fit(base: Profile, samples: list[Sample]) -> Profile:
    """Closed-form fit, robust where a grid search is not (overhead and bandwidth trade off).

    Decode at batch 1 is memory bound: the mean step time of a sample is
    overhead + bytes / B with bytes = weights + KV of the mean context, a line in bytes:
    least squares gives 1 / B (slope) and the overhead (intercept). Prefill samples whose
    time exceeds the memory term are compute bound: F = FLOPs / (time - overhead).
    """
    p = base
    by_len: dict[int, dict[int, float]] = {}
    for s in samples:
        by_len.setdefault(s.prompt_tokens, {})[s.decode_steps] = s.seconds
    xs, ys = [], []
    for length, runs in by_len.items():
        for steps, t in runs.items():
            if steps and 0 in runs:
                xs.append(p.weight_bytes + p.kv_bytes_per_token * (length + (steps + 1) / 2))
                ys.append((t - runs[0]) / steps)
    if len(xs) >= 2 and max(xs) > min(xs):
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
            (x - mx) ** 2 for x in xs)
        overhead = my - slope * mx
    else:
        slope, overhead = 0.0, p.iteration_overhead_s
    if slope <= 0 or overhead < 0:  # too noisy to separate: keep the base overhead
        overhead = p.iteration_overhead_s
        slope = sum(y - overhead for y in ys) / sum(xs) if xs else 1 / p.byte_rate
    if slope <= 0:
        raise ValueError("decode steps do not take longer than the base profile's overhead: "
                         "these samples cannot be fitted (too few, or another model's)")
    byte_rate = 1 / slope
    flop_rates = []
    for length, runs in by_len.items():
        if 0 not in runs:
            continue
        flops = 2 * p.params * length + 4 * p.layers * p.hidden * length * (length + 1) / 2
        mem_s = (p.weight_bytes + p.kv_bytes_per_token * length) / byte_rate
        compute_s = runs[0] - overhead
        if compute_s > mem_s * 1.05:
            flop_rates.append(flops / compute_s)
    flop_rate = sorted(flop_rates)[len(flop_rates) // 2] if flop_rates else p.flop_rate
    return replace(p, flops_eff=flop_rate / (p.peak_flops * p.gpus),
                   bandwidth_eff=byte_rate / (p.hbm_bandwidth * p.gpus),
                   iteration_overhead_s=overhead)


async def measure(url: str, lengths: list[int], decode_steps: int) -> list[Sample]:
    samples: list[Sample] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as http:
        for length in lengths:
            for steps in (0, decode_steps):
                tag = uuid.uuid4().hex[:8]  # a fresh prompt: nothing cached
                text = " ".join(f"w{tag}{i}" for i in range(length))
                body = {"text": text, "sampling_params": {"max_new_tokens": steps + 1,
                                                          "ignore_eos": True, "temperature": 0}}
                async with http.post(url.rstrip("/") + "/generate", json=body) as resp:
                    resp.raise_for_status()
                    meta = (await resp.json())["meta_info"]
                samples.append(Sample(int(meta["prompt_tokens"]), steps, float(meta["e2e_latency"])))
    return samples


def profile_yaml(p: Profile, source: str) -> str:
    data = {
        "name": p.name,
        "model": {"params": p.params, "layers": p.layers, "hidden": p.hidden,
                  "kv_heads": p.kv_heads, "head_dim": p.head_dim,
                  "bytes_per_param": p.bytes_per_param},
        "hardware": {"gpus": p.gpus, "peak_flops": p.peak_flops,
                     "hbm_bandwidth": p.hbm_bandwidth, "hbm_bytes": p.hbm_bytes},
        "efficiency": {"flops": round(p.flops_eff, 4), "bandwidth": round(p.bandwidth_eff, 4),
                       "iteration_overhead_s": round(p.iteration_overhead_s, 6)},
        "engine": {"mem_fraction_static": p.mem_fraction_static,
                   "chunked_prefill_size": p.chunked_prefill_size,
                   "max_running_requests": p.max_running_requests, "block_size": p.block_size},
    }
    return f"# Fitted by `ostinato sim-engine calibrate` from {source}\n" + yaml.safe_dump(data)


def recorded_samples(path: str) -> list[Sample]:
    """Samples measured elsewhere (e.g. docs/bench/gpu/llama_forward.py on a GPU): a JSON
    object whose "samples" are {prompt_tokens, decode_steps, seconds}."""
    try:
        rows = json.loads(Path(path).read_text())["samples"]
        samples = [Sample(int(r["prompt_tokens"]), int(r["decode_steps"]), float(r["seconds"]))
                   for r in rows]
    except KeyError as exc:
        raise ValueError(f"{path}: not a samples file (no {exc.args[0]!r})") from None
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(f"{path}: not a samples file ({exc})") from None
    if any(not math.isfinite(s.seconds) or s.seconds <= 0 for s in samples):
        raise ValueError(f"{path}: needs positive times")
    prefilled = {s.prompt_tokens for s in samples if not s.decode_steps}
    if not any(s.decode_steps and s.prompt_tokens in prefilled for s in samples):
        # (fit reads a decode step as a sample's time past the prefill of the same length)
        raise ValueError(f"{path}: needs decode samples, each with a prefill-only sample "
                         "of the same prompt length")
    return samples


def calibrate(source: str, base_profile: str, out: str | None, lengths: list[int],
              decode_steps: int, name: str | None = None, recorded: bool = False) -> Profile:
    """Fit to a real SGLang server at `source`, or (recorded) to a samples file."""
    base = load_profile(base_profile)
    samples = (recorded_samples(source) if recorded
               else asyncio.run(measure(source, lengths, decode_steps)))
    fitted = fit(replace(base, name=name or base.name + "-calibrated"), samples)
    if out:
        Path(out).write_text(profile_yaml(fitted, source))
    return fitted
