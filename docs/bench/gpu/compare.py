"""Measured GPU times (llama_forward.py's JSON) against the sim engine's cost model with a
profile: every prefill, prefill chunk and decode step, in ms, and the model's error.

    python docs/bench/gpu/compare.py docs/bench/gpu/h200-llama3.1-8b.json h200-llama3.1-8b
"""

from __future__ import annotations

import json
import sys

from workers.sim.cost_model import CostModel, load_profile


def rows(measured: dict, cost: CostModel) -> list[tuple[str, float, float]]:
    out = [(f"prefill {r['tokens']}", r["ms"], cost.prefill_time([(0, r["tokens"])]) * 1e3)
           for r in measured["prefill"]]
    out += [(f"prefill {r['tokens']} after {r['prior']}", r["ms"],
             cost.prefill_time([(r["prior"], r["tokens"])]) * 1e3)
            for r in measured.get("prefill_chunk", [])]
    out += [(f"decode batch {r['batch']}, context {r['context']} each", r["graph_ms"],
             cost.decode_time(r["batch"], r["batch"] * (r["context"] + 1)) * 1e3)
            for r in measured["decode_batch"]]
    return [row for row in out if row[1] is not None]


def main(path: str, profile: str) -> None:
    with open(path) as f:
        measured = json.load(f)
    print(f"| {measured['device']} | measured ms | {profile} ms | error |")
    print("|---|---:|---:|---:|")
    for label, real, model in rows(measured, CostModel(load_profile(profile))):
        print(f"| {label} | {real:.2f} | {model:.2f} | {(model / real - 1) * 100:+.0f}% |")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
