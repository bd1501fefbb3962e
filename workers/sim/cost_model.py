"""Iteration-time cost model of an LLM engine (roofline), and the profiles it reads.

One iteration (a prefill batch or a decode batch) costs
    overhead + max(FLOPs / (peak_flops * gpus * flops_eff),
                   bytes / (hbm_bandwidth * gpus * bandwidth_eff))
with FLOPs = 2 * params per token processed, plus attention (4 * layers * hidden per
query-key pair: QK^T and AV), and bytes = the weights once, plus the KV cache read.
Pure arithmetic; no clock, no I/O beyond loading a profile file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class Profile:
    name: str
    params: float
    layers: int
    hidden: int
    kv_heads: int
    head_dim: int
    bytes_per_param: float
    gpus: int
    peak_flops: float
    hbm_bandwidth: float
    hbm_bytes: float
    flops_eff: float
    bandwidth_eff: float
    iteration_overhead_s: float
    mem_fraction_static: float = 0.88
    chunked_prefill_size: int = 8192
    max_running_requests: int = 256
    block_size: int = 16

    @property
    def kv_bytes_per_token(self) -> float:
        return 2 * self.layers * self.kv_heads * self.head_dim * self.bytes_per_param

    @property
    def weight_bytes(self) -> float:
        return self.params * self.bytes_per_param

    @property
    def kv_capacity_tokens(self) -> int:
        """KV pool size as SGLang sizes it: static memory fraction minus the weights."""
        free = self.hbm_bytes * self.gpus * self.mem_fraction_static - self.weight_bytes
        return max(1, int(free / self.kv_bytes_per_token))

    @property
    def flop_rate(self) -> float:
        return self.peak_flops * self.gpus * self.flops_eff

    @property
    def byte_rate(self) -> float:
        return self.hbm_bandwidth * self.gpus * self.bandwidth_eff


def profile_from_dict(data: dict[str, Any]) -> Profile:
    try:
        m, h, e, g = data["model"], data["hardware"], data["efficiency"], data.get("engine", {})
        return Profile(
            name=str(data["name"]), params=float(m["params"]), layers=int(m["layers"]),
            hidden=int(m["hidden"]), kv_heads=int(m["kv_heads"]), head_dim=int(m["head_dim"]),
            bytes_per_param=float(m["bytes_per_param"]), gpus=int(h["gpus"]),
            peak_flops=float(h["peak_flops"]), hbm_bandwidth=float(h["hbm_bandwidth"]),
            hbm_bytes=float(h["hbm_bytes"]), flops_eff=float(e["flops"]),
            bandwidth_eff=float(e["bandwidth"]),
            iteration_overhead_s=float(e["iteration_overhead_s"]),
            mem_fraction_static=float(g.get("mem_fraction_static", 0.88)),
            chunked_prefill_size=int(g.get("chunked_prefill_size", 8192)),
            max_running_requests=int(g.get("max_running_requests", 256)),
            block_size=int(g.get("block_size", 16)),
        )
    except KeyError as exc:
        raise ValueError(f"profile is missing field {exc.args[0]!r}") from None
    except TypeError as exc:  # a section that is not a mapping, a value that is not a number
        raise ValueError(f"profile is malformed: {exc}") from None


def builtin_profiles() -> list[str]:
    folder = resources.files("workers.sim") / "profiles"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_profile(name_or_path: str) -> Profile:
    """A built-in profile by name (e.g. h100-llama3.1-8b) or a YAML file path; ValueError
    when there is none, or it is not a profile."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"profile {name_or_path!r} cannot be read: {exc}") from None
    else:
        res = resources.files("workers.sim") / "profiles" / f"{name_or_path}.yaml"
        if not res.is_file():
            raise ValueError(f"unknown profile {name_or_path!r}; built-in: {builtin_profiles()}")
        text = res.read_text()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"profile {name_or_path!r} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"profile {name_or_path!r}: expected a mapping, got {data!r}")
    return profile_from_dict(data)


@dataclass(frozen=True)
class CostModel:
    profile: Profile
    zero_cost: bool = False

    def _time(self, flops: float, nbytes: float) -> float:
        if self.zero_cost:
            return 0.0
        p = self.profile
        return p.iteration_overhead_s + max(flops / p.flop_rate, nbytes / p.byte_rate)

    def prefill_time(self, chunks: Sequence[tuple[int, int]]) -> float:
        """One prefill iteration; each chunk is (tokens already in KV, new tokens)."""
        p = self.profile
        new = sum(c for _, c in chunks)
        attn_pairs = sum(c * prior + c * (c + 1) / 2 for prior, c in chunks)
        flops = 2 * p.params * new + 4 * p.layers * p.hidden * attn_pairs
        nbytes = p.weight_bytes + p.kv_bytes_per_token * sum(prior + c for prior, c in chunks)
        return self._time(flops, nbytes)

    def decode_time(self, batch: int, context_tokens: int) -> float:
        """One decode iteration of `batch` requests holding `context_tokens` KV in total."""
        p = self.profile
        flops = 2 * p.params * batch + 4 * p.layers * p.hidden * context_tokens
        nbytes = p.weight_bytes + p.kv_bytes_per_token * context_tokens
        return self._time(flops, nbytes)

    @cached_property
    def _decode_terms(self) -> tuple[float, int, float, float, float, float, float]:
        p = self.profile
        return (2 * p.params, 4 * p.layers * p.hidden, p.weight_bytes, p.kv_bytes_per_token,
                p.flop_rate, p.byte_rate, p.iteration_overhead_s)

    def decode_ends(self, start: float, batch: int, context_tokens: int, steps: int) -> list[float]:
        """End times of `steps` consecutive decode iterations from `start`, the context growing
        by `batch` tokens a step: the running sum of decode_time, the same floats."""
        if self.zero_cost:
            return [start + 0.0] * steps
        two_params, attn, weights, kv_token, flop_rate, byte_rate, overhead = self._decode_terms
        compute = two_params * batch
        ends = []
        t = start
        context = context_tokens
        for _ in range(steps):
            # max(a, b) without the builtin's call (its argument tuple and parsing cost
            # more than the step's arithmetic): b only if greater, as max returns
            a = (compute + attn * context) / flop_rate
            b = (weights + kv_token * context) / byte_rate
            t += overhead + (b if b > a else a)
            ends.append(t)
            context += batch
        return ends

    def with_efficiency(self, flops_eff: float, bandwidth_eff: float, overhead_s: float) -> CostModel:
        return CostModel(replace(self.profile, flops_eff=flops_eff, bandwidth_eff=bandwidth_eff,
                                 iteration_overhead_s=overhead_s), self.zero_cost)
