"""Time a Llama-3.1-8B-shaped decoder (random bf16 weights) on one GPU, in plain PyTorch, to
fit the sim engine's cost model (workers/sim/cost_model.py) to a measured GPU.

Not SGLang: cuBLAS GEMMs, PyTorch's flash SDPA, unfused RMSNorm / RoPE / SiLU, contiguous
(unpaged) KV, decode steps replayed from CUDA graphs, prefill eager, no scheduler. What it
measures is the GPU side of one engine iteration; SGLang adds its scheduler's CPU time and
saves some kernel time by fusing.

    python docs/bench/gpu/llama_forward.py OUT.json            # on a GPU
    python docs/bench/gpu/llama_forward.py OUT.json --tiny     # a few-layer toy on any device

Writes: the GPU's name and the measured ceilings (a device copy, a big bf16 GEMM); batch-1
prefill times by prompt length; decode-step times by (batch, context), eager and graphed.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.attention.bias import causal_lower_right

# on a GPU, never the math backend: it would materialize a 32k x 32k score matrix per head
FAST_ATTENTION = [SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION,
                  SDPBackend.EFFICIENT_ATTENTION]
ALL_ATTENTION = [*FAST_ATTENTION, SDPBackend.MATH]


@dataclass(frozen=True)
class Shape:
    layers: int = 32
    hidden: int = 4096
    heads: int = 32
    kv_heads: int = 8
    head_dim: int = 128
    ffn: int = 14336
    vocab: int = 128256


TINY = Shape(layers=2, hidden=256, heads=4, kv_heads=2, head_dim=64, ffn=512, vocab=1000)


class Llama:
    """Weights and one forward pass; `kv` holds each layer's (k, v) caches [B, KVH, T, D]."""

    def __init__(self, s: Shape, device: str, dtype: torch.dtype) -> None:
        self.s = s
        gen = torch.Generator(device=device).manual_seed(0)

        def w(*shape: int) -> torch.Tensor:
            return torch.randn(*shape, device=device, dtype=dtype, generator=gen) * 0.02

        qkv = (s.heads + 2 * s.kv_heads) * s.head_dim
        self.embed = w(s.vocab, s.hidden)
        self.lm_head = w(s.vocab, s.hidden)
        self.norm = torch.ones(s.hidden, device=device, dtype=dtype)
        self.layer_w = [(torch.ones(s.hidden, device=device, dtype=dtype), w(qkv, s.hidden),
                         w(s.hidden, s.heads * s.head_dim),
                         torch.ones(s.hidden, device=device, dtype=dtype),
                         w(2 * s.ffn, s.hidden), w(s.hidden, s.ffn)) for _ in range(s.layers)]
        inv = 1.0 / (500000.0 ** (torch.arange(0, s.head_dim, 2, device=device).float()
                                  / s.head_dim))
        self.inv_freq = inv

    def params(self) -> int:
        n = self.embed.numel() + self.lm_head.numel() + self.norm.numel()
        return n + sum(t.numel() for layer in self.layer_w for t in layer)

    def rope(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        ang = (pos.float()[:, None] * self.inv_freq[None, :])[:, None, :]  # [T, 1, D/2]
        cos, sin = ang.cos().to(x.dtype), ang.sin().to(x.dtype)
        x1, x2 = x[..., ::2], x[..., 1::2]
        return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)

    def forward(self, ids: torch.Tensor, start: int, kv: list[tuple[torch.Tensor, torch.Tensor]],
                ) -> torch.Tensor:
        """ids [B, T] at positions start..start+T-1; writes their K/V into kv; returns the last
        position's logits [B, vocab]."""
        s = self.s
        b, t = ids.shape
        pos = torch.arange(start, start + t, device=ids.device)
        x = self.embed[ids]
        for (n1, wqkv, wo, n2, wgu, wd), (kc, vc) in zip(self.layer_w, kv, strict=True):
            h = F.rms_norm(x, (s.hidden,), n1)
            q, k, v = (h @ wqkv.T).split(
                [s.heads * s.head_dim, s.kv_heads * s.head_dim, s.kv_heads * s.head_dim], -1)
            q = self.rope(q.view(b, t, s.heads, s.head_dim), pos).transpose(1, 2)
            k = self.rope(k.view(b, t, s.kv_heads, s.head_dim), pos).transpose(1, 2)
            kc[:, :, start:start + t] = k
            vc[:, :, start:start + t] = v.view(b, t, s.kv_heads, s.head_dim).transpose(1, 2)
            # a chunk after earlier tokens: each query sees the earlier tokens and its chunk's
            # tokens up to itself (the mask aligned to the bottom right)
            mask = causal_lower_right(t, start + t) if t > 1 and start else None
            a = F.scaled_dot_product_attention(
                q, kc[:, :, :start + t], vc[:, :, :start + t], attn_mask=mask,
                is_causal=t > 1 and not start, enable_gqa=True)
            x = x + a.transpose(1, 2).reshape(b, t, -1) @ wo.T
            gate, up = (F.rms_norm(x, (s.hidden,), n2) @ wgu.T).chunk(2, -1)
            x = x + (F.silu(gate) * up) @ wd.T
        return F.rms_norm(x[:, -1], (s.hidden,), self.norm) @ self.lm_head.T

    def caches(self, batch: int, tokens: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        s, p = self.s, self.embed
        return [(torch.empty(batch, s.kv_heads, tokens, s.head_dim, device=p.device,
                             dtype=p.dtype),
                 torch.empty(batch, s.kv_heads, tokens, s.head_dim, device=p.device,
                             dtype=p.dtype)) for _ in range(s.layers)]


class Timer:
    def __init__(self, device: str) -> None:
        self.cuda = device.startswith("cuda")

    def median_ms(self, fn, reps: int, warmup: int = 2) -> float:  # type: ignore[no-untyped-def]
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(reps):
            if self.cuda:
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                fn()
                b.record()
                b.synchronize()
                times.append(a.elapsed_time(b))
            else:
                t0 = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times)


def ceilings(device: str, timer: Timer, tiny: bool) -> dict[str, float]:
    n = 1 << (20 if tiny else 30)                                   # 2 GiB of bf16 on a GPU
    src = torch.randn(n, device=device, dtype=torch.bfloat16)
    dst = torch.empty_like(src)
    copy_ms = timer.median_ms(lambda: dst.copy_(src), 10)
    m = 256 if tiny else 8192
    a = torch.randn(m, m, device=device, dtype=torch.bfloat16)
    b = torch.randn(m, m, device=device, dtype=torch.bfloat16)
    gemm_ms = timer.median_ms(lambda: a @ b, 10, warmup=3)
    return {"copy_bytes_per_s": 2 * n * 2 / (copy_ms / 1e3),
            "gemm_flops_per_s": 2 * m ** 3 / (gemm_ms / 1e3)}


def prefill_ms(model: Llama, timer: Timer, length: int, reps: int) -> float:
    kv = model.caches(1, length)
    ids = torch.randint(0, model.s.vocab, (1, length), device=model.embed.device)
    ms = timer.median_ms(lambda: model.forward(ids, 0, kv), reps)
    return ms


def decode_ms(model: Llama, timer: Timer, batch: int, context: int, reps: int,
              graph: bool) -> float:
    """One decode step of `batch` requests, each with `context` tokens already in KV."""
    kv = model.caches(batch, context + 1)
    ids = torch.randint(0, model.s.vocab, (batch, 1), device=model.embed.device)

    def step() -> torch.Tensor:
        return model.forward(ids, context, kv)

    if graph:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                step()
        torch.cuda.current_stream().wait_stream(side)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            step()
        ms = timer.median_ms(g.replay, reps)
    else:
        ms = timer.median_ms(step, reps)
    return ms


def consistency(model: Llama) -> float:
    """The largest relative error between one prefill of 33 tokens and the same tokens as
    32 + one decode step, or as chunks of 20 + 13 (the same logits if the KV cache, RoPE
    positions and causal masks are right)."""
    ids = torch.randint(0, model.s.vocab, (1, 33), device=model.embed.device)
    whole = model.forward(ids, 0, model.caches(1, 33)).float()
    errors = []
    for cut in (32, 20):
        kv = model.caches(1, 33)
        model.forward(ids[:, :cut], 0, kv)
        parts = model.forward(ids[:, cut:], cut, kv).float()
        errors.append(float((whole - parts).norm() / whole.norm()))
    return max(errors)


def chunk_ms(model: Llama, timer: Timer, prior: int, new: int, reps: int) -> float:
    """A prefill chunk of `new` tokens after `prior` tokens already in KV (chunked prefill,
    or a prompt extending a cached prefix)."""
    kv = model.caches(1, prior + new)
    ids = torch.randint(0, model.s.vocab, (1, new), device=model.embed.device)
    return timer.median_ms(lambda: model.forward(ids, prior, kv), reps)


class Run:
    """Results so far, written after each measurement (a run cut short keeps what it had);
    one failed measurement is recorded as an error and the run goes on."""

    def __init__(self, out: str, head: dict) -> None:
        self.out, self.result = out, head

    def save(self) -> None:
        with open(self.out, "w") as f:
            json.dump(self.result, f, indent=1)

    def ms(self, label: str, fn) -> float | None:  # type: ignore[no-untyped-def]
        try:
            value = fn()
        except Exception as exc:  # an OOM or a kernel refused: record it, go on
            self.result.setdefault("errors", []).append(f"{label}: {exc!r}"[:500])
            print(f"{label}: FAILED {exc!r}"[:300], flush=True)
            value = None
        else:
            print(f"{label}: {value:.3f} ms", flush=True)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        self.save()
        return value


def main(out: str, tiny: bool) -> None:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    shape = TINY if tiny else Shape()
    timer = Timer(device)
    torch.backends.cuda.matmul.allow_tf32 = False
    run = Run(out, {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
                    "torch": torch.__version__, "shape": asdict(shape)})
    result = run.result
    result["ceilings"] = ceilings(device, timer, tiny)
    print(json.dumps(result["ceilings"]), flush=True)
    model = Llama(shape, device, torch.bfloat16)
    result["params"] = model.params()
    graph = device == "cuda"
    with torch.inference_mode(), sdpa_kernel(FAST_ATTENTION if graph else ALL_ATTENTION):
        result["consistency_rel_err"] = consistency(model)
        print("consistency", result["consistency_rel_err"], flush=True)
        lengths = [64, 256] if tiny else [128, 512, 1024, 2048, 4096, 8192, 16384, 32768]
        result["prefill"] = []
        for n in lengths:
            result["prefill"].append({"tokens": n, "ms": run.ms(
                f"prefill {n}", lambda n=n: prefill_ms(model, timer, n, 5))})
        result["prefill_chunk"] = []
        for prior, new in [] if tiny else [(4096, 512), (8192, 8192), (24576, 8192)]:
            result["prefill_chunk"].append({"prior": prior, "tokens": new, "ms": run.ms(
                f"prefill {new} after {prior}",
                lambda p=prior, n=new: chunk_ms(model, timer, p, n, 5))})
        result["decode_batch1"] = []
        for c in lengths:
            result["decode_batch1"].append({"context": c, "graph_ms": run.ms(
                f"decode b=1 ctx {c} graph", lambda c=c: decode_ms(model, timer, 1, c, 20, graph)),
                "eager_ms": run.ms(f"decode b=1 ctx {c} eager",
                                   lambda c=c: decode_ms(model, timer, 1, c, 10, False))
                if c in lengths[::3] else None})
        result["decode_batch"] = []
        for c in [64] if tiny else [512, 2048]:
            for bsz in [1, 4] if tiny else [1, 4, 16, 64, 128, 256]:
                result["decode_batch"].append({"batch": bsz, "context": c, "graph_ms": run.ms(
                    f"decode b={bsz} ctx {c} graph",
                    lambda c=c, bsz=bsz: decode_ms(model, timer, bsz, c, 20, graph))})
    # what `ostinato sim-engine calibrate --samples` fits: a prefill of n tokens, and the same
    # prefill followed by one decode step at context n (batch 1, graphed)
    result["samples"] = [
        sample for p, d in zip(result["prefill"], result["decode_batch1"], strict=True)
        if p["ms"] is not None and d["graph_ms"] is not None
        for sample in ({"prompt_tokens": p["tokens"], "decode_steps": 0, "seconds": p["ms"] / 1e3},
                       {"prompt_tokens": p["tokens"], "decode_steps": 1,
                        "seconds": (p["ms"] + d["graph_ms"]) / 1e3})]
    run.save()
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1], "--tiny" in sys.argv[2:])
