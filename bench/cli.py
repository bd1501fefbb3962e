"""`ostinato bench sim|live` arguments and dispatch (workload-spec.md "Commands")."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ostinato.event_loop import EVENT_LOOPS

DEFAULT_POLICIES = "fcfs+round_robin,fcfs+cache_aware,default,clairvoyant"


def add_parser(sub: Any) -> None:
    bench = sub.add_parser("bench", help="benchmarks: the cluster simulator (sim) or the live mesh")
    kinds = bench.add_subparsers(dest="bench_kind", required=True, metavar="KIND")
    sim = kinds.add_parser("sim", help="SIMULATED: sweep policies x rates in the virtual-time "
                                       "cluster simulator")
    sim.add_argument("--workload", default="mixed", help="built-in name or a YAML/JSON spec file")
    sim.add_argument("--policies", default=DEFAULT_POLICIES,
                     help="comma-separated <priority>+<routing> or presets (default, clairvoyant)")
    sim.add_argument("--rates", required=True, help="comma-separated program arrival rates (per s)")
    sim.add_argument("--engines", type=int, default=8, help="engines in the simulated cluster")
    sim.add_argument("--profile", default="h100-llama3.1-8b",
                     help="the engines' cost profile (workers/sim/profiles, or a calibrated YAML)")
    sim.add_argument("--programs", type=int, help="programs of the finite runs (unloaded and "
                     "one-engine references; overrides the spec); steady-state runs take as "
                     "many as arrive")
    sim.add_argument("--seed", type=int, help="overrides the spec's seed")
    sim.add_argument("--out", default="bench-results", help="directory for results.json, .md, .png")
    sim.add_argument("--slo-factor", type=float, default=5.0,
                     help="capacity: the highest stable rate whose mean normalized latency is "
                          "at most this x the unloaded one")
    sim.add_argument("--budget", default="32",
                     help="calls in flight per engine that the planner grants: N, none (no "
                          "cap: calls wait in the engines' queues, as behind a router), or "
                          "N,POLICY=M,... to give policies their own")
    sim.add_argument("--jobs", type=int, default=2, help="parallel simulation processes")
    sim.add_argument("--warmup", type=int, default=300,
                     help="programs (of another seed, light load) the planner learns from before "
                          "each measured run; 0: cold start")
    sim.add_argument("--window-s", type=float, default=300.0,
                     help="each run's measured window (simulated s) of a steady-state run; the "
                          "settling period and horizon follow from the unloaded run (bench/sweep.py)")
    sim.add_argument("--bare", default=None,
                     help="policies run as bare routers, without the planner's program admission "
                          "and tenant isolation, as the systems they stand for (default: "
                          "fcfs+round_robin,fcfs+cache_aware; '' for none)")
    sim.add_argument("--clients-end-programs", choices=("spec", "yes", "no"), default="spec",
                     help="whether clients end their programs: as each class of the spec says, "
                          "every class (the SDK), or none (OpenAI-compatible clients: their "
                          "programs are conversations that the planner expires)")
    sim.add_argument("--readme", help="also refresh this README's bench section")
    sim.add_argument("--quiet", action="store_true", help="no progress bar")

    iso = kinds.add_parser("isolation", help="SIMULATED: a quiet tenant's latency alone and "
                                             "under another tenant's flood (steady state)")
    iso.add_argument("--workload", default="flood",
                     help="two tenants, the quiet one first, with their shares of the programs")
    iso.add_argument("--policies", default="default,fcfs+cache_aware",
                     help="policies to compare, comma-separated")
    iso.add_argument("--quiet-rate", type=float, default=0.7,
                     help="the quiet tenant's programs per second (0.7: about a fifth of one "
                          "h100-llama3.1-8b engine on `flood`, which sustains 3-4 a second)")
    iso.add_argument("--engines", type=int, default=1, help="engines in the simulated cluster")
    iso.add_argument("--budget", default="32",
                     help="the planner's calls in flight per engine: N, or none (no cap: "
                          "calls wait in the engine's queue)")
    iso.add_argument("--window-s", type=float, default=300.0,
                     help="each run's measured window (simulated s)")
    iso.add_argument("--profile", default="h100-llama3.1-8b", help="the engines' cost profile")
    iso.add_argument("--isolation-fraction", type=float, default=None,
                     help="the planner's isolation_fraction in the flood runs (default: the "
                          "planner's own, 0.5625; 1.0: off)")
    iso.add_argument("--isolation-budget", type=int, default=None,
                     help="the planner's isolation_budget in the flood runs: the budget an "
                          "uncapped engine's is judged by for isolation (default: the "
                          "planner's own, 32; 0: the engine's own)")
    iso.add_argument("--bare", default="",
                     help="policies run as bare routers (no planner budget, program admission "
                          "or tenant shares: SGLang's router); default: none, every policy with "
                          "the planner's tenant machinery")
    iso.add_argument("--out", default="", help="also write the results JSON here")

    live = kinds.add_parser("live", help="the real mesh on loopback with zero-cost sim engines")
    live.add_argument("--calls", type=int, default=500,
                      help="calls per closed-loop run (with --rates: per rate, the duration decides)")
    live.add_argument("--concurrency", type=int, default=16,
                      help="closed loop: callers sending one call after another; open loop "
                      "(--rate): the most calls in flight (a send held back by it counts "
                      "from its scheduled time)")
    live.add_argument("--rate", type=float, default=0.0,
                      help="calls per second, open loop on a fixed schedule, each call timed "
                      "from its scheduled send (0: closed loop)")
    live.add_argument("--workers", type=int, default=2,
                      help="workers (each with its zero-cost sim engine) in the mesh")
    live.add_argument("--out", default="bench-live",
                      help="folder for results.json (default: ./bench-live)")
    live.add_argument("--tracing", default="off",
                      help="off, file (every span to a JSON lines file), or both as off,file: "
                      "tracing's cost as ratios in one run")
    live.add_argument("--rates", default="",
                      help="comma-separated calls per second: open-loop fixed-rate runs, the "
                      "load generator in its own process (--calls, --concurrency, --rate and "
                      "--tracing are then unused)")
    live.add_argument("--duration-s", type=float, default=10.0,
                      help="--rates: seconds of load per rate")
    live.add_argument("--modes", default="program",
                      help="--rates: one-call programs sent as program (StartProgram, CallWhole, "
                      "EndProgram), call (one CallWhole without a program id), http "
                      "(POST /v1/chat/completions) and/or engine (no mesh: POST /generate "
                      "straight to the mesh's engines in turn, the baseline that rows' mesh_added_ms are "
                      "taken against), comma separated")
    live.add_argument("--event-loop", choices=EVENT_LOOPS, default=EVENT_LOOPS[0],
                      help="--rates: the event loop of the services and the load generator")
    cache = kinds.add_parser("cache", help="semantic-cache lookup latency (real Redis, real "
                                           "embedding model, either semantic index)")
    cache.add_argument("--index", choices=["local", "redis", "both"], default="both",
                       help="local: in-process exact search; redis: Redis 8 vector sets "
                            "(make redis8)")
    cache.add_argument("--entries", type=int, default=10_000,
                       help="entries stored before the lookups")
    cache.add_argument("--lookups", type=int, default=400, help="lookups timed")
    cache.add_argument("--seed", type=int, default=1, help="seed of the generated texts")
    cache.add_argument("--out", default="", help="also write the results JSON here")
    eng = kinds.add_parser("engine", help="request-level serving benchmark (bench_serving's "
                           "random dataset and metrics) against an SGLang-API server or the sim "
                           "engine core in virtual time")
    target = eng.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="an SGLang native API server: real SGLang or the sim engine")
    target.add_argument("--virtual", action="store_true",
                        help="SIMULATED: the sim engine core in virtual time (--profile)")
    eng.add_argument("--profile", default="h100-llama3.1-8b", help="the sim engine's cost profile")
    eng.add_argument("--max-running-requests", type=int, default=0,
                     help="--virtual: the engine's cap (0: the profile's)")
    eng.add_argument("--num-prompts", type=int, default=200, help="requests sent")
    eng.add_argument("--random-input-len", type=int, default=1024,
                     help="prompt tokens per request")
    eng.add_argument("--random-output-len", type=int, default=256,
                     help="output tokens per request")
    eng.add_argument("--random-range-ratio", type=float, default=0.0,
                     help="lengths drawn from [len x ratio, len] (0: exact lengths)")
    eng.add_argument("--request-rate", type=float, default=float("inf"),
                     help="Poisson arrivals a second; inf (default): all at once")
    eng.add_argument("--max-concurrency", type=int, default=0, help="0: no limit")
    eng.add_argument("--vocab-size", type=int, default=32_000,
                     help="random token ids are drawn below this (the model's vocabulary)")
    eng.add_argument("--seed", type=int, default=1, help="seed of the drawn requests")
    eng.add_argument("--out", default="", help="also write the results JSON here")
    pb = kinds.add_parser("planner", help="microseconds per dispatch decision of the pure "
                                          "planner core at queue depths (this CPU, in-process)")
    pb.add_argument("--queued", default="1000,10000,100000",
                    help="comma-separated queue depths (queued calls)")
    pb.add_argument("--workers", type=int, default=64,
                    help="workers the planner core schedules over")
    pb.add_argument("--decisions", type=int, default=1_200_000,
                    help="timed decisions per run (enough to hold full collections)")
    pb.add_argument("--warmup", type=int, default=None,
                    help="untimed decisions before them (default: max(10000, 2 x queued))")
    pb.add_argument("--program-calls", type=int, default=40,
                    help="mean calls a program submits; it ends when the last has ended and a "
                         "new program takes its place (0: programs never end)")
    pb.add_argument("--policies", default="default,fcfs+round_robin,plas+cache_aware",
                    help="policies to time, comma-separated")
    pb.add_argument("--out", default="", help="also write the results JSON here")
    soak = kinds.add_parser("soak", help="the live mesh (SIMULATED engines) under many calls "
                            "with faults injected on a schedule: every call accounted for, "
                            "none duplicated, each service's memory (make soak)")
    soak.add_argument("--calls", type=int, default=10_000, help="calls in all")
    soak.add_argument("--programs", type=int, default=200, help="programs running at once")
    soak.add_argument("--calls-per-program", type=int, default=10, help="calls in each program")
    soak.add_argument("--one-call", action="store_true",
                      help="bare Calls (each a one-call program) instead of programs; "
                           "--programs callers at once")
    soak.add_argument("--workers", type=int, default=4,
                      help="workers (each with its sim engine) in the mesh")
    soak.add_argument("--faults", default="worker@0.15,engine@0.25,planner@0.35,redis@0.45,"
                      "gateway@0.55", help="target@fraction of the calls finished, comma "
                      "separated; targets worker, engine, planner, redis, gateway; '' for none")
    soak.add_argument("--down-s", type=float, default=1.0, help="each fault's outage")
    soak.add_argument("--time-scale", type=float, default=0.05,
                      help="sim engines' real seconds per simulated second (0: zero cost)")
    soak.add_argument("--kv-tokens", type=int, default=0,
                      help="sim engines' KV pool in tokens (0: the profile's); a small pool "
                      "fills the prefix caches early, so memory growth from them levels off")
    soak.add_argument("--timeout-s", type=float, default=1800.0,
                      help="calls without an outcome by then are reported as hung")
    soak.add_argument("--rss-bound-mib", type=float, default=16.0,
                      help="memory is flat if no service's RSS grew more than this")
    soak.add_argument("--no-semantic-cache", action="store_true",
                      help="the gateway skips loading its embedding model (faster restarts)")
    soak.add_argument("--workdir", default="", help="keep the mesh's logs here")
    soak.add_argument("--config", default="", help="a mesh config file (YAML) under the "
                      "soak's own settings, e.g. planner.unstarted_grant_s")
    soak.add_argument("--memtrace", default="", help="debug: tracemalloc snapshots of the "
                      "workers and engines into this directory (bench/memtrace; slows them)")
    soak.add_argument("--out", default="bench-soak/results.json",
                      help="where the results JSON goes")
    kv = kinds.add_parser("kv", help="KV-reference index lookup latency (real Redis)")
    kv.add_argument("--workers", type=int, default=8, help="workers in the KV-reference index")
    kv.add_argument("--blocks", type=int, default=100_000,
                    help="block hashes held per worker, in whole prompts of --prompt-blocks "
                    "(rounded down, at least one prompt)")
    kv.add_argument("--prompt-blocks", type=int, default=64, help="blocks per prompt (16 tokens each)")
    kv.add_argument("--lookups", type=int, default=1000, help="lookups timed")
    kv.add_argument("--seed", type=int, default=1, help="seed of the generated prompts")
    kv.add_argument("--out", default="", help="also write the results JSON here")


def run(args: argparse.Namespace) -> int:
    from bench.dists import SpecError

    try:
        if args.bench_kind == "sim":
            from bench.sweep import capacity_ratios, sweep_command

            results = sweep_command(
                args.workload, args.policies, args.rates, engines=args.engines,
                profile=args.profile, programs=args.programs, seed=args.seed, out=args.out,
                slo_factor=args.slo_factor, budget=args.budget, jobs=args.jobs,
                warmup_programs=args.warmup, window_s=args.window_s, bare=args.bare,
                ends_programs={"spec": None, "yes": True, "no": False}[
                    args.clients_end_programs],
                readme=args.readme, progress=None if args.quiet else sys.stderr)
            print("SIMULATED results (virtual-time cluster simulator):")
            print(json.dumps({"capacity": results["capacity"],
                              "capacity_vs_fcfs+round_robin": capacity_ratios(results),
                              "sweep_wall_s": results["sweep_wall_s"]}, indent=2))
            for f in results["_files"]:
                print(f"wrote {f}")
            return 0
        if args.bench_kind == "isolation":
            from bench.isolation import isolation_command

            print(json.dumps(isolation_command(args), indent=2))
            return 0
        if args.bench_kind == "cache":
            from bench.cache_lookup import cache_command

            if args.entries < 1 or args.lookups < 1:
                raise ValueError("--entries and --lookups must be >= 1")
            print(json.dumps(cache_command(args.entries, args.lookups, args.seed,
                                           args.out or None, args.index), indent=2))
            return 0
        if args.bench_kind == "engine":
            from bench.engine_bench import engine_command

            print(json.dumps(engine_command(args), indent=2))
            return 0
        if args.bench_kind == "planner":
            from bench.planner_bench import planner_command

            print(json.dumps(planner_command(args), indent=2))
            return 0
        if args.bench_kind == "kv":
            from bench.kv_lookup import kv_command

            if min(args.workers, args.blocks, args.prompt_blocks, args.lookups) < 1:
                raise ValueError("--workers, --blocks, --prompt-blocks and --lookups must be >= 1")
            print(json.dumps(kv_command(args.workers, args.blocks, args.prompt_blocks,
                                        args.lookups, args.seed, args.out or None), indent=2))
            return 0
        if args.bench_kind == "soak":
            from bench.soak import soak_command

            results = soak_command(args)
            return 0 if all(results["checks"].values()) else 1
        from bench.live import live_command

        live_command(args)
        return 0
    except SpecError as exc:
        print(f"ostinato bench: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"ostinato bench: {exc}", file=sys.stderr)
        return 2
