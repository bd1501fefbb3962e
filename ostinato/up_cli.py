"""`ostinato up`: the whole mesh in the foreground (ostinato/mesh.py), its addresses printed,
stopped with every child on Ctrl-C, SIGTERM or a closed terminal."""

from __future__ import annotations

import argparse
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import Any

from ostinato.cli_overrides import flag_overrides, load_config, merge
from ostinato.config import ConfigError, MeshConfig, load_mesh_config
from ostinato.reasoning_formats import REASONING_FORMATS
from ostinato.tool_formats import MODEL_FORMATS


def add_parser(sub: Any) -> None:
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
    up.add_argument("--tool-call-parser", choices=MODEL_FORMATS,
                    help="the model's tool-call format (the sim engines write it too; "
                    "gpt-oss with --reasoning-parser gpt-oss)")
    up.add_argument("--reasoning-parser", choices=sorted(REASONING_FORMATS),
                    help="the model thinks, in this format: answers carry its thinking apart "
                    "(reasoning_content), constrained answers come after it (launched SGLang "
                    "servers get --reasoning-parser); the sim engines' model then thinks too")
    up.add_argument("--no-auth", action="store_true",
                    help="open mode: callers need no API key (without one a caller is tenant "
                         "'default'; on the OpenAI-compatible API, with one the mesh does not "
                         "know too)")
    up.add_argument("--trace-file", help="every service appends its spans here (OTLP JSON "
                    "lines; `ostinato trace show PROGRAM_ID --file PATH` draws a program)")


def up_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """`up`'s flags as config overrides."""
    return merge(
        {"workers": args.workers} if args.workers is not None else {},
        {"planner_replicas": args.planner_replicas} if args.planner_replicas is not None else {},
        flag_overrides(args, "redis", {"redis_url": "url"}),
        flag_overrides(args, "planner", {"policy": "policy", "planner_port": "port"}),
        flag_overrides(args, "gateway", {"gateway_port": "port", "http_port": "http_port",
                                         "tool_call_parser": "tool_call_parser",
                                         "reasoning_parser": "reasoning_parser"}),
        # the sim engines' model writes what the gateway reads
        flag_overrides(args, "sim_engine", {"tool_call_parser": "tool_call_format",
                                            "reasoning_parser": "reasoning_format"}),
        # launched SGLang servers hold a constrained call's grammar until the thinking ends
        flag_overrides(args, "worker", {"reasoning_parser": "engine_reasoning_parser"}),
        _engine_overrides(args),
        _trace_file_overrides(args),
        {"gateway": {"allow_anonymous": True}} if args.no_auth else {},
    )


def run(args: argparse.Namespace) -> int:
    from ostinato.mesh import Mesh, MeshStartError

    overrides = up_overrides(args)
    cfg = load_config(args, overrides)
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
