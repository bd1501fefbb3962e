"""The `ostinato` command: run the mesh, its services one by one, or the demo."""

from __future__ import annotations

import argparse
import shlex
import sys

from ostinato.cli_overrides import flag_overrides, load_config, merge
from ostinato.config import ConfigError, MeshConfig
from ostinato.event_loop import SERVICE_EXIT_S
from ostinato.event_loop import run as run_loop
from ostinato.reasoning_formats import REASONING_FORMATS
from ostinato.tool_formats import MODEL_FORMATS


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML mesh config file (sections: gateway, planner, ...)")
    p.add_argument("--port-file", help="write the bound address as JSON here once serving")
    p.add_argument("--host", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to bind; 0 picks a free one")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ostinato", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    from bench.cli import add_parser as add_bench
    from ostinato.health_cli import add_parser as add_health
    from ostinato.tenants_cli import add_parser as add_tenants
    from ostinato.tokenizer_fetch import add_parser as add_fetch_tokenizer
    from ostinato.up_cli import add_parser as add_up
    from tracing.trace_cli import add_parser as add_trace

    add_up(sub)
    demo = sub.add_parser("demo", help="start a mesh, run an example agentic program, stop")
    demo.add_argument("--workers", type=int,
                      help="number of workers (one sim engine each; default: the config's "
                      "workers, 2 unless set)")
    demo.add_argument("--redis-url", help="use this Redis instead of an embedded one")
    demo.add_argument("--config", help="mesh config file (YAML)")
    add_bench(sub)
    add_tenants(sub)
    add_trace(sub)
    add_health(sub)
    add_fetch_tokenizer(sub)

    gw = sub.add_parser("gateway", help="run the gateway (public gRPC edge)")
    _common(gw)
    gw.add_argument("--planner-address", help="the planner's gRPC address(es), comma-separated "
                    "(as gateway.planner_address)")
    gw.add_argument("--redis-url", help="caches and tenancy data (none: configured keys only)")
    gw.add_argument("--http-port", type=int, help="OpenAI-compatible HTTP API port (0: free)")
    gw.add_argument("--metrics-port", type=int, help="Prometheus /metrics port (0: free, -1: off)")

    pl = sub.add_parser("planner", help="run the planner (control plane)")
    _common(pl)
    pl.add_argument("--redis-url", help="programs' records (recovery after a restart), the KV "
                    "index, tenancy data")
    pl.add_argument("--policy", help="<priority>+<routing> (e.g. plas+affinity), or the preset "
                    "default (as planner.policy)")
    pl.add_argument("--metrics-port", type=int, help="Prometheus /metrics port (0: free, -1: off)")

    wk = sub.add_parser("worker", help="run a worker in front of one SGLang (or sim) engine")
    _common(wk)
    wk.add_argument("--worker-id", help="its name in the mesh (default: from host and port)")
    wk.add_argument("--engine-url", help="SGLang server URL, e.g. http://127.0.0.1:30000")
    wk.add_argument("--planner-address", help="the planner's gRPC address(es), comma-separated "
                    "(as worker.planner_address)")
    wk.add_argument("--max-inflight", type=int,
                    help="calls the planner may run on it at once (as worker.max_inflight)")
    wk.add_argument("--advertise-address", help="host:port the gateway should dial (containers)")
    wk.add_argument("--redis-url", help="publish the engine's blocks to this Redis's KV index")
    wk.add_argument("--metrics-port", type=int, help="Prometheus /metrics port (0: free, -1: off)")
    wk.add_argument("--engine-kv-events", help="the engine's KV events ZMQ endpoint (SGLang "
                    "--kv-events-config), e.g. tcp://127.0.0.1:5557; none: index on completion")
    wk.add_argument("--engine-kv-replay", help="the engine's KV events replay endpoint "
                    "(SGLang replay_endpoint), to fill sequence gaps")
    wk.add_argument("--engine", choices=["attach", "sglang"],
                    help="attach to --engine-url (default), or launch and supervise an SGLang "
                    "server")
    wk.add_argument("--model", help="with --engine sglang: the model path")
    wk.add_argument("--engine-launch", help="with --engine sglang: the launch command (default "
                    ".cache/sglang-cpu/launch if built, else python -m sglang.launch_server)")
    wk.add_argument("--engine-arg", action="append", default=None,
                    help="with --engine sglang: one more launch_server argument (repeatable)")
    wk.add_argument("--engine-log", help="with --engine sglang: append the engine's output here")
    wk.add_argument("--reasoning-parser", choices=sorted(REASONING_FORMATS),
                    help="with --engine sglang: the model's reasoning format, SGLang's "
                    "--reasoning-parser (a constrained answer then comes after the thinking)")

    se = sub.add_parser("sim-engine", help="run the simulated SGLang server (SIMULATED output), "
                        "or `sim-engine calibrate` to fit a profile to a real SGLang server")
    se.add_argument("action", nargs="?", choices=["serve", "calibrate"], default="serve")
    _common(se)
    se.add_argument("--sglang-url", help="calibrate: the real SGLang server to measure")
    se.add_argument("--samples", help="calibrate: fit to timings recorded in this JSON file "
                    "instead (docs/bench/gpu/llama_forward.py writes one)")
    se.add_argument("--base-profile", default="h100-llama3.1-8b",
                    help="calibrate: profile whose model and hardware constants to keep")
    se.add_argument("--out", help="calibrate: write the fitted profile YAML here")
    se.add_argument("--lengths", default="128,512,2048,8192",
                    help="calibrate: prompt lengths to measure, comma separated")
    se.add_argument("--decode-tokens", type=int, default=32,
                    help="calibrate: tokens to decode per measured request")
    se.add_argument("--model", "--model-path", dest="model",
                    help="model name to report (default sim/llama-3.1-8b)")
    # SGLang launch_server's flags, so a worker launches either engine the same way
    se.add_argument("--enable-priority-scheduling", dest="enable_priority", action="store_true",
                    default=None, help="as SGLang's: a request's priority orders the queue")
    se.add_argument("--enable-metrics", action="store_true",
                    help="accepted for SGLang's flag: the sim engine always serves /metrics")
    se.add_argument("--max-total-tokens", type=int,
                    help="as SGLang's: KV cache capacity in tokens (default: the profile's)")
    se.add_argument("--max-running-requests", type=int,
                    help="as SGLang's: the most requests in one batch (default: the profile's)")
    se.add_argument("--profile", help="hardware/model profile name or YAML file "
                    "(default h100-llama3.1-8b)")
    se.add_argument("--schedule-policy", choices=["fcfs", "lpm"],
                    help="as SGLang's: waiting requests first come, or longest prefix match first")
    se.add_argument("--time-scale", type=float,
                    help="real seconds per simulated second (0.1 runs ten times faster)")
    se.add_argument("--zero-cost", action="store_true", default=None,
                    help="no simulated time: for measuring the mesh's own overhead")
    se.add_argument("--incremental-streaming-output", action=argparse.BooleanOptionalAction,
                    default=None, help="as SGLang's: each streamed event its new text only "
                    "(default: on, as the worker launches SGLang; off: SGLang's own default, "
                    "the whole text so far in each)")
    se.add_argument("--kv-events-config", help="publish KV events as SGLang does, e.g. "
                    "'{\"publisher\": \"zmq\", \"endpoint\": \"tcp://*:5557\"}'")
    se.add_argument("--tool-call-format", choices=MODEL_FORMATS,
                    help="the simulated model's tool-call format (default hermes)")
    se.add_argument("--reasoning-format", "--reasoning-parser", dest="reasoning_format",
                    choices=sorted(REASONING_FORMATS),
                    help="the simulated model thinks, in this format (gpt-oss: with "
                    "--tool-call-format gpt-oss)")
    return parser


def _traced(service: str, cfg: MeshConfig, instance: str = "") -> MeshConfig:
    from tracing.setup import configure_tracing

    configure_tracing(service, cfg.telemetry, instance)
    return cfg


def _run_service(args: argparse.Namespace) -> None:
    from tracing.logs import configure_logging

    net = {"host": "host", "port": "port"}
    configure_logging(args.command)
    if args.command == "sim-engine" and args.action == "calibrate":
        _calibrate(args)
        return
    if args.command == "gateway":
        from gateway.main import serve as serve_gateway

        cfg = _traced("gateway", load_config(args, merge(flag_overrides(args, "gateway", {
            **net, "planner_address": "planner_address", "http_port": "http_port",
            "metrics_port": "metrics_port"}),
            flag_overrides(args, "redis", {"redis_url": "url"}))))
        run_loop(serve_gateway(cfg.gateway, cfg.redis, args.port_file, cfg.telemetry,
                               cfg.planner.program_idle_ttl_s, cfg.planner.weights()),
                 cfg.event_loop,
                 exit_within_s=SERVICE_EXIT_S)
    elif args.command == "planner":
        from planner.main import serve as serve_planner

        cfg = _traced("planner", load_config(args, merge(
            flag_overrides(args, "planner", {**net, "policy": "policy",
                                         "metrics_port": "metrics_port"}),
            flag_overrides(args, "redis", {"redis_url": "url"}))))
        if not cfg.redis.url:  # (docs review 2026-12-06: a traceback, exit 1)
            raise ConfigError("the planner needs a Redis: --redis-url, redis.url in --config "
                              "or OSTINATO_REDIS__URL (ostinato up starts an embedded one)")
        run_loop(serve_planner(cfg.planner, cfg.redis, args.port_file), cfg.event_loop,
                 exit_within_s=SERVICE_EXIT_S)
    elif args.command == "worker":
        from workers.main import serve as serve_worker

        cfg = load_config(args, merge(flag_overrides(args, "worker", {
            **net, "worker_id": "worker_id", "engine_url": "engine_url",
            "planner_address": "planner_address", "max_inflight": "max_inflight",
            "advertise_address": "advertise_address", "engine_kv_events": "engine_kv_events",
            "engine_kv_replay": "engine_kv_replay", "engine": "engine", "model": "engine_model",
            "engine_launch": "engine_launch", "metrics_port": "metrics_port",
            "reasoning_parser": "engine_reasoning_parser"}),
            {"worker": {"engine_args": shlex.join(args.engine_arg)}} if args.engine_arg else {},
            flag_overrides(args, "redis", {"redis_url": "url"})))
        _traced("worker", cfg, cfg.worker.worker_id)
        run_loop(serve_worker(cfg.worker, cfg.redis, args.port_file, args.engine_log,
                              cfg.telemetry, cfg.gateway.reasoning_parser), cfg.event_loop,
                 exit_within_s=SERVICE_EXIT_S)
    else:
        from workers.sim.server import serve as serve_engine

        cfg = load_config(args, flag_overrides(args, "sim_engine", {
            **net, "model": "model", "zero_cost": "zero_cost", "profile": "profile",
            "incremental_streaming_output": "incremental_streaming_output",
            "schedule_policy": "schedule_policy", "time_scale": "time_scale",
            "kv_events_config": "kv_events_config", "tool_call_format": "tool_call_format",
            "reasoning_format": "reasoning_format",
            "enable_priority": "enable_priority", "max_total_tokens": "max_total_tokens",
            "max_running_requests": "max_running_requests"}))
        _traced("sim-engine", cfg)
        run_loop(serve_engine(cfg.sim_engine, args.port_file), cfg.event_loop,
                 exit_within_s=SERVICE_EXIT_S)


def _calibrate(args: argparse.Namespace) -> None:
    from workers.sim.calibrate import calibrate

    if bool(args.sglang_url) == bool(args.samples):
        raise ConfigError("calibrate needs one of --sglang-url or --samples")
    lengths = [int(x) for x in args.lengths.split(",") if x]
    try:
        p = calibrate(args.sglang_url or args.samples, args.base_profile, args.out, lengths,
                      args.decode_tokens, recorded=bool(args.samples))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    print(f"fitted {p.name}: flops efficiency {p.flops_eff:.3f}, bandwidth efficiency "
          f"{p.bandwidth_eff:.3f}, iteration overhead {p.iteration_overhead_s * 1000:.2f} ms")
    if args.out:
        print(f"wrote {args.out}")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    """The arguments; one a command does not know is reported with that command's usage
    (argparse alone reports it with the top level's)."""
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        commands.choices[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    try:
        if args.command == "up":
            from ostinato.up_cli import run as run_up

            return run_up(args)
        if args.command == "bench":
            from bench.cli import run as run_bench

            return run_bench(args)
        if args.command == "tenants":
            from ostinato.tenants_cli import run as run_tenants

            return run_tenants(args)
        if args.command == "health":
            from ostinato.health_cli import run as run_health

            return run_health(args)
        if args.command == "trace":
            return int(args.func(args))
        if args.command == "fetch-tokenizer":
            from ostinato.tokenizer_fetch import run as run_fetch_tokenizer

            return run_fetch_tokenizer(args)
        if args.command == "demo":
            from ostinato.demo import main as demo_main

            return demo_main(args)
        _run_service(args)
        return 0
    except KeyboardInterrupt:  # Ctrl-C before a service serves (its model loading): no trace
        print(f"ostinato {args.command}: interrupted", file=sys.stderr)
        return 130
    except ConfigError as exc:
        print(f"ostinato {args.command}: configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
