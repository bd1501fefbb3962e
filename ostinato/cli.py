"""The `ostinato` command: run the mesh, its services one by one, or the demo."""

from __future__ import annotations

import argparse
import shlex
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import Any

from ostinato.config import ConfigError, MeshConfig, load_mesh_config
from ostinato.event_loop import run as run_loop


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML mesh config file (sections: gateway, planner, ...)")
    p.add_argument("--port-file", help="write the bound address as JSON here once serving")
    p.add_argument("--host", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to bind; 0 picks a free one")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ostinato", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="run the whole mesh in the foreground (Ctrl-C stops it)")
    up.add_argument("--config", help="mesh config file (YAML; docs/reference/config.md); "
                    "OSTINATO_* environment variables override it, flags override both")
    up.add_argument("--workers", type=int, help="number of workers (one sim engine each)")
    up.add_argument("--redis-url", help="use this Redis instead of an embedded one")
    up.add_argument("--policy", help="planner policy, e.g. fcfs+round_robin")
    up.add_argument("--planner-replicas", type=int,
                    help="planners to run (2: one active, one standing by; planner HA)")
    up.add_argument("--gateway-port", type=int, help="gateway gRPC port (default 50051)")
    up.add_argument("--http-port", type=int, help="gateway HTTP port (default 8080)")
    # Only the gateway's ports are fixed: internal services take free ports, so two meshes
    # run side by side; these pin them.
    up.add_argument("--planner-port", type=int, default=0,
                    help="planner gRPC port (default 0: a free port)")
    up.add_argument("--worker-base-port", type=int, default=0,
                    help="first worker's port; worker i gets base+i (default 0: free ports)")
    up.add_argument("--engine-base-port", type=int, default=0,
                    help="first sim engine's port; engine i gets base+i (default 0: free ports)")
    up.add_argument("--verbose", action="store_true", help="show the services' logs here")
    up.add_argument("--engine", choices=["sim", "sglang"], default="sim",
                    help="sim: simulated engines; sglang: each worker launches a real SGLang "
                    "server (CPU: `make sglang-cpu` first)")
    up.add_argument("--model", help="with --engine sglang: the model path (its tokenizer and "
                    "chat template are used by the gateway and workers)")
    up.add_argument("--tool-call-parser", choices=["hermes", "qwen25", "llama3", "mistral"],
                    help="the model's tool-call format")
    up.add_argument("--no-auth", action="store_true",
                    help="open mode: callers need no API key (without one a caller is tenant "
                         "'default'; on the OpenAI-compatible API, with one the mesh does not "
                         "know too)")
    up.add_argument("--trace-file", help="every service appends its spans here (OTLP JSON "
                    "lines; `ostinato trace show PROGRAM_ID --file PATH` draws a program)")

    demo = sub.add_parser("demo", help="start a mesh, run an example agentic program, stop")
    demo.add_argument("--workers", type=int, default=2,
                      help="number of workers (one sim engine each; default 2)")
    demo.add_argument("--redis-url", help="use this Redis instead of an embedded one")
    demo.add_argument("--config", help="mesh config file (YAML)")

    from bench.cli import add_parser as add_bench
    from ostinato.health_cli import add_parser as add_health
    from ostinato.tenants_cli import add_parser as add_tenants
    from tracing.trace_cli import add_parser as add_trace

    add_bench(sub)
    add_tenants(sub)
    add_trace(sub)
    add_health(sub)

    gw = sub.add_parser("gateway", help="run the gateway (public gRPC edge)")
    _common(gw)
    gw.add_argument("--planner-address", help="the planner's gRPC address(es), comma-separated "
                    "(as gateway.planner_address)")
    gw.add_argument("--redis-url", help="caches and tenancy data (none: configured keys only)")
    gw.add_argument("--http-port", type=int, help="OpenAI-compatible HTTP API port (0: free)")
    gw.add_argument("--metrics-port", type=int, help="Prometheus /metrics port (0: free, -1: off)")

    pl = sub.add_parser("planner", help="run the planner (control plane)")
    _common(pl)
    pl.add_argument("--redis-url")
    pl.add_argument("--policy")
    pl.add_argument("--metrics-port", type=int, help="Prometheus /metrics port (0: free, -1: off)")

    wk = sub.add_parser("worker", help="run a worker in front of one SGLang (or sim) engine")
    _common(wk)
    wk.add_argument("--worker-id")
    wk.add_argument("--engine-url", help="SGLang server URL, e.g. http://127.0.0.1:30000")
    wk.add_argument("--planner-address", help="the planner's gRPC address(es), comma-separated "
                    "(as worker.planner_address)")
    wk.add_argument("--max-inflight", type=int)
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

    se = sub.add_parser("sim-engine", help="run the simulated SGLang server (SIMULATED output), "
                        "or `sim-engine calibrate` to fit a profile to a real SGLang server")
    se.add_argument("action", nargs="?", choices=["serve", "calibrate"], default="serve")
    _common(se)
    se.add_argument("--sglang-url", help="calibrate: the real SGLang server to measure")
    se.add_argument("--base-profile", default="h100-llama3.1-8b",
                    help="calibrate: profile whose model and hardware constants to keep")
    se.add_argument("--out", help="calibrate: write the fitted profile YAML here")
    se.add_argument("--lengths", default="128,512,2048,8192",
                    help="calibrate: prompt lengths to measure, comma separated")
    se.add_argument("--decode-tokens", type=int, default=32)
    se.add_argument("--model", "--model-path", dest="model",
                    help="model name to report (default sim/llama-3.1-8b)")
    # SGLang launch_server's flags, so a worker launches either engine the same way
    se.add_argument("--enable-priority-scheduling", dest="enable_priority", action="store_true",
                    default=None)
    se.add_argument("--enable-metrics", action="store_true",
                    help="accepted for SGLang's flag: the sim engine always serves /metrics")
    se.add_argument("--max-total-tokens", type=int)
    se.add_argument("--max-running-requests", type=int)
    se.add_argument("--profile", help="hardware/model profile name or YAML file "
                    "(default h100-llama3.1-8b)")
    se.add_argument("--schedule-policy", choices=["fcfs", "lpm"])
    se.add_argument("--time-scale", type=float,
                    help="real seconds per simulated second (0.1 runs ten times faster)")
    se.add_argument("--zero-cost", action="store_true", default=None,
                    help="no simulated time: for measuring the mesh's own overhead")
    se.add_argument("--kv-events-config", help="publish KV events as SGLang does, e.g. "
                    "'{\"publisher\": \"zmq\", \"endpoint\": \"tcp://*:5557\"}'")
    se.add_argument("--tool-call-format", choices=["hermes", "qwen25", "llama3", "mistral"],
                    help="the simulated model's tool-call format (default hermes)")
    return parser


def _overrides(args: argparse.Namespace, section: str, names: dict[str, str]) -> dict[str, Any]:
    values = {field: getattr(args, attr) for attr, field in names.items()
              if getattr(args, attr, None) is not None}
    return {section: values} if values else {}


def _merge(*parts: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in parts:
        for k, v in part.items():
            out[k] = {**out.get(k, {}), **v} if isinstance(v, dict) else v
    return out


def _config(args: argparse.Namespace, overrides: dict[str, Any]) -> MeshConfig:
    return load_mesh_config(getattr(args, "config", None), overrides=overrides)


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

        cfg = _traced("gateway", _config(args, _merge(_overrides(args, "gateway", {
            **net, "planner_address": "planner_address", "http_port": "http_port",
            "metrics_port": "metrics_port"}),
            _overrides(args, "redis", {"redis_url": "url"}))))
        run_loop(serve_gateway(cfg.gateway, cfg.redis, args.port_file, cfg.telemetry), cfg.event_loop)
    elif args.command == "planner":
        from planner.main import serve as serve_planner

        cfg = _traced("planner", _config(args, _merge(
            _overrides(args, "planner", {**net, "policy": "policy",
                                         "metrics_port": "metrics_port"}),
            _overrides(args, "redis", {"redis_url": "url"}))))
        run_loop(serve_planner(cfg.planner, cfg.redis, args.port_file), cfg.event_loop)
    elif args.command == "worker":
        from workers.main import serve as serve_worker

        cfg = _config(args, _merge(_overrides(args, "worker", {
            **net, "worker_id": "worker_id", "engine_url": "engine_url",
            "planner_address": "planner_address", "max_inflight": "max_inflight",
            "advertise_address": "advertise_address", "engine_kv_events": "engine_kv_events",
            "engine_kv_replay": "engine_kv_replay", "engine": "engine", "model": "engine_model",
            "engine_launch": "engine_launch", "metrics_port": "metrics_port"}),
            {"worker": {"engine_args": shlex.join(args.engine_arg)}} if args.engine_arg else {},
            _overrides(args, "redis", {"redis_url": "url"})))
        _traced("worker", cfg, cfg.worker.worker_id)
        run_loop(serve_worker(cfg.worker, cfg.redis, args.port_file, args.engine_log,
                              cfg.telemetry), cfg.event_loop)
    else:
        from workers.sim.server import serve as serve_engine

        cfg = _config(args, _overrides(args, "sim_engine", {
            **net, "model": "model", "zero_cost": "zero_cost", "profile": "profile",
            "schedule_policy": "schedule_policy", "time_scale": "time_scale",
            "kv_events_config": "kv_events_config", "tool_call_format": "tool_call_format",
            "enable_priority": "enable_priority", "max_total_tokens": "max_total_tokens",
            "max_running_requests": "max_running_requests"}))
        _traced("sim-engine", cfg)
        run_loop(serve_engine(cfg.sim_engine, args.port_file), cfg.event_loop)


def _calibrate(args: argparse.Namespace) -> None:
    from workers.sim.calibrate import calibrate

    if not args.sglang_url:
        raise ConfigError("calibrate needs --sglang-url")
    lengths = [int(x) for x in args.lengths.split(",") if x]
    p = calibrate(args.sglang_url, args.base_profile, args.out, lengths, args.decode_tokens)
    print(f"fitted {p.name}: flops efficiency {p.flops_eff:.3f}, bandwidth efficiency "
          f"{p.bandwidth_eff:.3f}, iteration overhead {p.iteration_overhead_s * 1000:.2f} ms")
    if args.out:
        print(f"wrote {args.out}")


def _engine_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """`up --engine sglang --model PATH`: workers launch real SGLang servers of PATH, and the
    gateway and workers use its tokenizer and chat template."""
    if args.engine != "sglang":
        return {}
    if not args.model:
        raise ConfigError("ostinato up --engine sglang needs --model PATH")
    model = str(Path(args.model).resolve())
    return {"worker": {"engine": "sglang", "engine_model": model, "kv_tokenizer": f"hf:{model}"},
            "gateway": {"kv_tokenizer": f"hf:{model}", "model": model}}


def _trace_file_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """`up --trace-file PATH`: the file exporter on, beside any configured exporters."""
    if not args.trace_file:
        return {}
    base = load_mesh_config(args.config).telemetry.exporters()
    return {"telemetry": {"traces": ",".join(dict.fromkeys([*base, "file"])),
                          "trace_file": str(Path(args.trace_file).resolve())}}


def _up(args: argparse.Namespace) -> int:
    from ostinato.mesh import Mesh, MeshStartError

    overrides = _merge(
        {"workers": args.workers} if args.workers is not None else {},
        {"planner_replicas": args.planner_replicas} if args.planner_replicas is not None else {},
        _overrides(args, "redis", {"redis_url": "url"}),
        _overrides(args, "planner", {"policy": "policy", "planner_port": "port"}),
        _overrides(args, "gateway", {"gateway_port": "port", "http_port": "http_port",
                                     "tool_call_parser": "tool_call_parser"}),
        _engine_overrides(args),
        _trace_file_overrides(args),
        {"gateway": {"allow_anonymous": True}} if args.no_auth else {},
    )
    cfg = _config(args, overrides)
    for name, port in (("port", cfg.gateway.port), ("http_port", cfg.gateway.http_port)):
        _check_port_free(cfg.gateway.host, port, f"gateway.{name}")
    stop = threading.Event()
    # A graceful stop on Ctrl-C, SIGTERM or a closed terminal; the children also get SIGTERM
    # from the kernel if this process dies any other way (ostinato/child_process.py).
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    mesh = Mesh(cfg, worker_base_port=args.worker_base_port,
                engine_base_port=args.engine_base_port, inherit_output=args.verbose)
    try:
        ep = mesh.start()
    except MeshStartError as exc:
        print(f"ostinato up: {exc}", file=sys.stderr)
        _kept_logs(mesh.close(keep_logs=True))
        return 1
    print("Ostinato mesh is up (engines are " + (
        "real SGLang servers launched by the workers)" if cfg.worker.engine == "sglang"
        else "SIMULATED SGLang servers)"))
    print(f"  gateway  gRPC  {ep.gateway}")
    if ep.gateway_http:
        print(f"  gateway  HTTP  http://{ep.gateway_http}/v1   (OpenAI-compatible)")
    print(f"  planner  gRPC  {ep.planner}   policy {cfg.planner.policy}"
          + (f"   ({len(ep.planners)} replicas: one active, by a lease in Redis)"
             if len(ep.planners) > 1 else ""))
    for wid, addr in ep.workers.items():
        print(f"  {wid:<8} gRPC  {addr}")
    for i, url in enumerate(ep.engines):
        print(f"  engine-{i} HTTP  {url}   (SGLang native API, simulated)")
    print(f"  redis          {ep.redis_url}")
    if not _redis_answers(cfg, ep.redis_url):
        print("  WARNING        Redis does not answer at that URL: the mesh serves without it "
              "(no caches,\n                 stored responses or program records; API keys made "
              "with `ostinato tenants`\n                 are known only once it answers)")
    print(f"  logs           {ep.log_dir}")
    if cfg.gateway.allow_anonymous:
        print("  auth           OFF (open mode): anyone reaching the gateway is tenant 'default' "
              "(OpenAI clients with any API key too)")
    else:
        print("  auth           API keys required; make one with\n"
              f"                 ostinato tenants --redis-url {ep.redis_url} create NAME")
    if ep.metrics:
        print("  metrics (Prometheus, GET /metrics; dashboard deploy/grafana/ostinato-dashboard.json)")
        for name, address in ep.metrics.items():
            print(f"    {name:<10} http://{address}/metrics")
    print("Press Ctrl-C to stop.", flush=True)
    died = ""
    try:
        while not stop.wait(0.5):
            # with planner replicas, the mesh goes on while one planner lives
            for name, names in [("gateway", ["gateway"]), ("planner", list(ep.planners))]:
                if all(mesh.child(n).poll() is not None for n in names):
                    print(f"ostinato up: {name} exited; stopping", file=sys.stderr)
                    died = name
                    stop.set()
    finally:
        print("stopping mesh ...", flush=True)
        _kept_logs(mesh.close(keep_logs=bool(died)))  # why it died is in them
        print("stopped")
    return 1 if died else 0


def _check_port_free(host: str, port: int, field: str) -> None:
    """A fixed public port another process holds (another mesh?) is refused before anything
    starts, rather than by the gateway's bind once the rest of the mesh is up."""
    if port <= 0:
        return
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(f"{field}: {host}:{port} is not free ({exc.strerror}; another mesh? "
                              "0 picks a free port)") from None


def _redis_answers(cfg: MeshConfig, url: str) -> bool:
    import redis

    from cache.redis_client import connect_sync

    try:
        with connect_sync(url, cluster=cfg.redis.cluster, timeout_s=2.0) as client:
            return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


def _kept_logs(path: Path | None) -> None:
    if path is not None:
        print(f"ostinato up: the services' logs are kept in {path}", file=sys.stderr)


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
            return _up(args)
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
        if args.command == "demo":
            from ostinato.demo import main as demo_main

            return demo_main(args)
        _run_service(args)
        return 0
    except ConfigError as exc:
        print(f"ostinato {args.command}: configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
