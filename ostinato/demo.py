"""`ostinato demo`: starts a mesh, runs an example agentic program through the SDK, prints it.

The program is a small research agent: a chain of dependent calls with client-side tools
between them (a calculator and a lookup table), then a parallel fan-out of three
sub-questions and a join that depends on all three. Engines are SIMULATED SGLang servers,
so the text is synthetic; timings, routing, tokens and dependencies are real.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass

from ostinato.aio_client import AsyncClient, AsyncProgram
from ostinato.config import MeshConfig, load_mesh_config
from ostinato.mesh import Mesh, MeshStartError
from ostinato.sdk_results import CallOutput

FACTS = {"population of lyon": 522_250, "area of lyon km2": 47.87}
SYSTEM = ("You are a research agent. Think step by step, call tools with "
          "TOOL(name, argument), and cite the results you used.")


def calculator(expression: str) -> str:
    """A client-side tool: evaluates + - * / over numbers, nothing else."""
    allowed = set("0123456789.+-*/() ")
    if not set(expression) <= allowed:
        raise ValueError(f"calculator accepts arithmetic only: {expression!r}")
    return f"{eval(expression, {'__builtins__': {}}, {}):.2f}"


def lookup(key: str) -> str:
    return str(FACTS.get(key, "unknown"))


@dataclass
class Step:
    label: str
    out: CallOutput
    parents: list[str]


async def research_program(program: AsyncProgram) -> list[Step]:
    steps: list[Step] = []
    history = [{"role": "system", "content": SYSTEM},
               {"role": "user", "content": "What is the population density of Lyon?"}]

    async def turn(label: str) -> CallOutput:
        previous = [steps[-1].out.call_id] if steps else []
        out = await program.call(messages=history, max_tokens=48, temperature=0.0)
        steps.append(Step(label, out, previous))
        history.append({"role": "assistant", "content": out.text})
        return out

    # A chain of dependent calls, each followed by a client-side tool result.
    await turn("plan")
    history.append({"role": "tool", "content": "lookup: " + lookup("population of lyon")})
    await turn("read population")
    history.append({"role": "tool", "content": "lookup: " + lookup("area of lyon km2")})
    await turn("read area")
    density = calculator(f"{FACTS['population of lyon']} / {FACTS['area of lyon km2']}")
    history.append({"role": "tool", "content": "calculator: " + density})
    await turn("compute density")
    await turn("draft answer")

    # Fan-out: three independent sub-questions on parallel threads, then a join.
    root = steps[-1].out.call_id
    topics = ["compare with Paris", "compare with Marseille", "historical trend"]
    branch_outs = await asyncio.gather(*[
        program.call(messages=[*history, {"role": "user", "content": f"Now: {t}."}],
                     thread_id=f"branch-{i}", parents=[root], max_tokens=32, temperature=0.0)
        for i, t in enumerate(topics)
    ])
    for topic, out in zip(topics, branch_outs, strict=True):
        steps.append(Step(f"fan-out: {topic}", out, [root]))
    joined = [o.call_id for o in branch_outs]
    notes = "\n".join(f"- {t}: {o.text}" for t, o in zip(topics, branch_outs, strict=True))
    out = await program.call(
        messages=[*history, {"role": "user", "content": "Combine these notes:\n" + notes}],
        parents=joined, max_tokens=64, temperature=0.0)
    steps.append(Step("join", out, joined))
    return steps


def print_steps(steps: list[Step]) -> None:
    print(f"{'#':>2}  {'step':<32} {'call':<16} {'worker':<9} {'ms':>7} "
          f"{'prompt':>6} {'out':>4} {'cached':>6}  depends on")
    ids = {s.out.call_id: i + 1 for i, s in enumerate(steps)}
    for i, s in enumerate(steps, 1):
        deps = ",".join(f"#{ids[p]}" for p in s.parents) or "-"
        u = s.out.usage
        print(f"{i:>2}  {s.label:<32} {s.out.call_id:<16} {s.out.worker_id:<9} "
              f"{s.out.latency_s * 1000:>7.1f} {u.prompt_tokens:>6} {u.completion_tokens:>4} "
              f"{u.cached_tokens:>6}  {deps}")
        print(f"      -> {s.out.text[:96]}{'...' if len(s.out.text) > 96 else ''}")


async def run(address: str) -> int:
    async with AsyncClient(address) as client:
        program = await client.program(program_class="demo-research")
        async with program:
            started = time.monotonic()
            steps = await research_program(program)
            elapsed = time.monotonic() - started
        print_steps(steps)
        s = program.summary
        assert s is not None
        print(f"\nprogram {s.program_id}: {s.calls_completed} calls completed, "
              f"{s.calls_failed} failed, {s.calls_cancelled} cancelled, {elapsed:.2f}s wall, engine service "
              f"{s.attained_service_s:.2f}s, tokens {s.usage.prompt_tokens} in / "
              f"{s.usage.completion_tokens} out")
        simulated = all(st.out.simulated for st in steps)
        print("engines: " + ("SIMULATED SGLang (synthetic text)" if simulated else "SGLang"))
        return 0 if s.calls_completed == len(steps) else 1


def demo_config(args: argparse.Namespace) -> MeshConfig:
    """The demo's mesh: the config file and OSTINATO_* variables, under the flags given; in
    open mode (it lives on loopback for the length of the demo)."""
    overrides: dict[str, object] = {"gateway": {"allow_anonymous": True}}
    if args.workers is not None:
        overrides["workers"] = args.workers
    if args.redis_url:
        overrides["redis"] = {"url": args.redis_url}
    return load_mesh_config(args.config, overrides=overrides)


def main(args: argparse.Namespace) -> int:
    from tracing.logs import configure_logging

    configure_logging("demo", level="warning")
    cfg = demo_config(args)
    print(f"Starting an Ostinato mesh: {cfg.workers} workers over simulated SGLang engines, "
          "planner, gateway, Redis ... (open mode: no API key needed, every caller is "
          "tenant 'default')", flush=True)
    mesh = Mesh(cfg, ephemeral_ports=True)
    try:
        ep = mesh.start()
        print(f"gateway {ep.gateway}  planner {ep.planner}  redis {ep.redis_url}\n", flush=True)
        return asyncio.run(run(ep.gateway))
    except MeshStartError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    finally:
        mesh.close()
