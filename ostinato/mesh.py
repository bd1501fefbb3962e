"""Runs the whole mesh on one machine as real child processes: Redis, sim engines, workers,
planner and gateway. Used by `ostinato up`, `ostinato demo` and the integration tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from cache.redis_server import DataDirInUse, EmbeddedRedis, find_vector_redis
from ostinato.child_process import die_with_parent
from ostinato.config import MeshConfig, as_dict, check_sglang_mesh, check_sim_mesh
from ostinato.engine_limits import engine_context_length, engine_input_limit
from ostinato.mesh_workdir import PREFIX as WORKDIR_PREFIX
from ostinato.mesh_workdir import claim, folder_id, remove_stale
from ostinato.service_env import service_env
from workers.engine_process import kv_event_endpoints


class MeshStartError(RuntimeError):
    pass


class MeshStartAborted(MeshStartError):
    """start()'s `abort` was set (a Ctrl-C during start-up): what had started is stopped."""


@dataclass
class MeshEndpoints:
    gateway: str = ""
    gateway_http: str = ""  # the OpenAI-compatible HTTP API, host:port
    planner: str = ""  # every planner's address, comma-separated
    planners: dict[str, str] = field(default_factory=dict)  # planner, planner-1 ... -> address
    redis_url: str = ""
    workers: dict[str, str] = field(default_factory=dict)  # worker id -> gRPC address
    engines: list[str] = field(default_factory=list)  # sim engine URLs
    log_dir: str = ""
    # service name (gateway, planner, worker-0, engine-0 ...) -> host:port of its /metrics
    metrics: dict[str, str] = field(default_factory=dict)


@dataclass
class _Child:
    name: str
    proc: subprocess.Popen[bytes]
    port_file: Path
    log_path: Path
    args: list[str] = field(default_factory=list)
    config_file: Path | None = None


def _port(base: int, index: int, ephemeral: bool) -> int:
    return 0 if ephemeral or base == 0 else base + index


def _metrics_port(configured: int, index: int, ephemeral: bool) -> int:
    """The /metrics port of the index-th planner or worker: the configured one + index, so
    that each has its own; 0 a free one, -1 off."""
    return configured if configured < 0 else _port(configured, index, ephemeral)


class Mesh:
    """Starts services in dependency order and stops them in reverse.

    ephemeral_ports=True binds every service to a free port (tests, demo): the kernel's, or
    `port_source`'s (tests: a port nobody else takes while a service restarts on it,
    tests/ports.py); otherwise the configured ports are used, workers and sim engines counting
    up from their base ports (worker.port and sim_engine.port unless given here; 0: a free
    port each).
    """

    def __init__(self, config: MeshConfig, *, ephemeral_ports: bool = False,
                 workdir: str | None = None, worker_base_port: int | None = None,
                 engine_base_port: int | None = None, inherit_output: bool = False,
                 port_source: Callable[[], int] | None = None) -> None:
        self.config = config
        self._ephemeral = ephemeral_ports
        self._port_source = port_source
        self._worker_base = config.worker.port if worker_base_port is None else worker_base_port
        self._engine_base = config.sim_engine.port if engine_base_port is None else engine_base_port
        self._inherit = inherit_output
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix=WORKDIR_PREFIX)
        self.workdir = Path(workdir or self._tmp.name)  # type: ignore[union-attr]
        self.workdir.mkdir(parents=True, exist_ok=True)
        # its own folder, claimed: one left by a killed mesh is removed by the next start
        self._claim = claim(self.workdir) if self._tmp is not None else None
        self._children: list[_Child] = []
        self._redis: EmbeddedRedis | None = None
        self._abort = threading.Event()  # start()'s: never set unless the caller's is
        self.endpoints = MeshEndpoints(log_dir=str(self.workdir / "logs"))

    def _listen(self, base: int, index: int) -> int:
        """A service's port: its configured base + index, or (ephemeral_ports) a free one."""
        if self._ephemeral:
            return self._port_source() if self._port_source is not None else 0
        return _port(base, index, False)

    def _spawn(self, name: str, args: list[str], config_file: Path,
               at: int | None = None) -> _Child:
        logs = self.workdir / "logs"
        logs.mkdir(exist_ok=True)
        port_file = self.workdir / f"{name}.port.json"
        port_file.unlink(missing_ok=True)
        log_path = logs / f"{name}.log"
        out = None if self._inherit else open(log_path, "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            # SIGTERM from the kernel if the mesh dies without stopping its children
            die_with_parent([sys.executable, "-P", "-m", "ostinato.cli", *args, "--config",
                             str(config_file), "--port-file", str(port_file)]),
            stdout=out, stderr=subprocess.STDOUT if out else None, env=service_env(os.environ),
            start_new_session=True,  # Ctrl-C reaches the mesh, which stops children in order
        )
        if out is not None:
            out.close()
        child = _Child(name, proc, port_file, log_path, list(args), config_file)
        self._children.insert(len(self._children) if at is None else at, child)
        return child

    def _wait(self, child: _Child, timeout_s: float) -> dict[str, object]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._abort.is_set():
                raise MeshStartAborted(f"start-up interrupted while {child.name} was starting")
            if child.port_file.exists():
                return dict(json.loads(child.port_file.read_text()))
            if child.proc.poll() is not None:
                tail = child.log_path.read_text(errors="replace")[-3000:] if child.log_path.exists() else ""
                raise MeshStartError(f"{child.name} exited with {child.proc.returncode}:\n{tail}")
            self._abort.wait(0.05)
        raise MeshStartError(f"{child.name} did not become ready within {timeout_s:.0f}s")

    def start(self, timeout_s: float = 60.0, *,
              abort: threading.Event | None = None) -> MeshEndpoints:
        """Starts every service, waiting for each to be ready; once `abort` is set (a signal
        handler's, say) it stops what has started and raises MeshStartAborted. First removes
        the folders of meshes that were killed (ostinato/mesh_workdir.py)."""
        if abort is not None:
            self._abort = abort
        remove_stale()
        try:
            return self._start(timeout_s)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout_s: float) -> MeshEndpoints:
        cfg = self.config
        if cfg.worker.engine == "attach":
            check_sim_mesh(cfg)
        else:
            check_sglang_mesh(cfg)
        redis_url = cfg.redis.url
        if not redis_url:
            self._redis = self._embedded_redis()
            try:
                redis_url = self._redis.start()
            except DataDirInUse as exc:
                raise MeshStartError(f"redis.data_dir: {exc}") from None
        self.endpoints.redis_url = redis_url
        config_file = self.workdir / "mesh.yaml"
        data = as_dict(cfg)
        data["redis"]["url"] = redis_url
        if cfg.planner_replicas > 1:  # one active by the lease in Redis, the others stand by
            data["planner"]["ha"] = True
        config_file.write_text(yaml.safe_dump(data))
        self._start_planners(config_file, timeout_s)
        if cfg.worker.engine == "sglang":
            self._start_launching_workers(timeout_s)
        else:
            self._start_sim_workers(timeout_s)
        if self.endpoints.engines and not (cfg.gateway.context_length
                                           and cfg.gateway.max_input_tokens):
            # the served model's window, as its first engine tells it (SGLang's /v1/models),
            # and the longest prompt it takes (its /get_server_info)
            learned = {"context_length": engine_context_length(self.endpoints.engines[0]),
                       "max_input_tokens": engine_input_limit(self.endpoints.engines[0])}
            learned = {k: v for k, v in learned.items() if v and not getattr(cfg.gateway, k)}
            if learned:
                data["gateway"].update(learned)
                config_file.write_text(yaml.safe_dump(data))
        gateway = self._spawn("gateway", [
            "gateway", "--planner-address", self.endpoints.planner,
            "--port", str(self._listen(cfg.gateway.port, 0)),
            "--http-port", str(self._listen(cfg.gateway.http_port, 0)
                               if cfg.gateway.http_port >= 0 else cfg.gateway.http_port),
        ], config_file)
        started = self._wait(gateway, timeout_s)
        self.endpoints.gateway = str(started["address"])
        self.endpoints.gateway_http = str(started.get("http_address", ""))
        self._note_metrics("gateway", started)
        return self.endpoints

    def _start_planners(self, config_file: Path, timeout_s: float) -> None:
        """planner_replicas planners ("planner", "planner-1" ...); gateways and workers get
        every address and follow the active one (planner/ha_channel.py)."""
        cfg = self.config
        planners = [self._spawn("planner" if i == 0 else f"planner-{i}", [
            "planner", "--port", str(self._listen(cfg.planner.port, i)),
            "--metrics-port", str(_metrics_port(cfg.planner.metrics_port, i, self._ephemeral)),
        ], config_file) for i in range(cfg.planner_replicas)]
        for planner in planners:
            started = self._wait(planner, timeout_s)
            self.endpoints.planners[planner.name] = str(started["address"])
            self._note_metrics(planner.name, started)
        self.endpoints.planner = ",".join(self.endpoints.planners.values())

    def _note_metrics(self, name: str, started: dict[str, object]) -> None:
        if started.get("metrics_address"):
            self.endpoints.metrics[name] = str(started["metrics_address"])

    def _start_launching_workers(self, timeout_s: float) -> None:
        """Workers that launch and supervise their own SGLang servers (worker.engine sglang)."""
        cfg, config_file = self.config, self.workdir / "mesh.yaml"
        logs = self.workdir / "logs"
        workers = [
            self._spawn(f"worker-{i}", [
                "worker", "--worker-id", f"worker-{i}", "--planner-address", self.endpoints.planner,
                "--port", str(self._listen(self._worker_base, i)),
                "--metrics-port", str(_metrics_port(cfg.worker.metrics_port, i, self._ephemeral)),
                "--engine-log", str(logs / f"engine-{i}.log"),
            ], config_file)
            for i in range(cfg.workers)
        ]
        wait_s = max(timeout_s, cfg.worker.engine_start_timeout_s + 30)
        for i, worker in enumerate(workers):
            started = self._wait(worker, wait_s)
            self.endpoints.workers[f"worker-{i}"] = str(started["address"])
            self.endpoints.engines.append(str(started.get("engine_url", "")))
            self._note_metrics(f"worker-{i}", started)
            # the SGLang server it launched (--enable-metrics)
            self.endpoints.metrics[f"engine-{i}"] = str(started.get("engine_url", "")).split(
                "://", 1)[-1].rstrip("/")

    def _start_sim_workers(self, timeout_s: float) -> None:
        cfg, config_file = self.config, self.workdir / "mesh.yaml"
        # Each engine publishes its KV events (SGLang's wire format) on a socket named for
        # the mesh's folder (its path, hashed), and its worker indexes the blocks from them.
        kv = [kv_event_endpoints(f"{folder_id(self.workdir)}-engine-{i}")
              for i in range(cfg.workers)]
        engines = [
            self._spawn(f"engine-{i}", [
                "sim-engine", "--port", str(self._listen(self._engine_base, i)),
                *(["--kv-events-config", json.dumps({"publisher": "zmq", "endpoint": events,
                                                     "replay_endpoint": replay})]
                  if cfg.worker.kv_index else []),
            ], config_file)
            for i, (events, replay) in enumerate(kv)
        ]
        for i, engine in enumerate(engines):
            started = self._wait(engine, timeout_s)
            self.endpoints.engines.append(str(started["address"]))
            self._note_metrics(f"engine-{i}", started)
        workers = [
            self._spawn(f"worker-{i}", [
                "worker", "--worker-id", f"worker-{i}", "--engine-url", url,
                "--planner-address", self.endpoints.planner,
                "--port", str(self._listen(self._worker_base, i)),
                "--metrics-port", str(_metrics_port(cfg.worker.metrics_port, i, self._ephemeral)),
                *(["--engine-kv-events", kv[i][0], "--engine-kv-replay", kv[i][1]]
                  if cfg.worker.kv_index else []),
            ], config_file)
            for i, url in enumerate(self.endpoints.engines)
        ]
        for i, worker in enumerate(workers):
            started = self._wait(worker, timeout_s)
            self.endpoints.workers[f"worker-{i}"] = str(started["address"])
            self._note_metrics(f"worker-{i}", started)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stops gateway, workers, engines, planner (reverse start order), then Redis."""
        for child in reversed(self._children):
            if child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
                try:
                    child.proc.wait(timeout=timeout_s)
                except subprocess.TimeoutExpired:
                    child.proc.kill()
                    child.proc.wait()
        self._children.clear()
        if self._redis is not None:
            self._redis.stop()
            self._redis = None

    def kill_services(self) -> None:
        """Kills every service now (a second Ctrl-C while they stop, or start); the embedded
        Redis still stops cleanly after them."""
        for child in list(self._children):
            child.proc.kill()  # (one already reaped is skipped)

    def child(self, name: str) -> subprocess.Popen[bytes]:
        return self._named(name).proc

    def _named(self, name: str) -> _Child:
        if named := [c for c in self._children if c.name == name]:
            return named[0]
        raise KeyError(name)

    def _own_redis(self) -> EmbeddedRedis:
        if self._redis is None:
            raise RuntimeError("this mesh uses an external Redis")
        return self._redis

    def stop_redis(self) -> None:
        """Stops the embedded Redis (outage tests); the services keep running without it."""
        self._own_redis().stop()

    def redis_paused(self) -> contextlib.AbstractContextManager[None]:
        """The embedded Redis stalled (SIGSTOP) while in the block (outage tests)."""
        return self._own_redis().paused()

    def redis_exit(self) -> int | None:
        """The embedded Redis's exit status once it died (`up` starts it again), else None."""
        return self._redis.poll() if self._redis is not None else None

    def start_redis(self, *, wait: bool = True) -> str:
        """Starts the dead embedded Redis again on its port from its AOF (`wait`: serving)."""
        (old := self._own_redis()).stop()  # (its data directory's lock released, if it died)
        self._redis = self._embedded_redis(port=old.port)
        return self._redis.start() if wait else self._redis.launch()

    def redis_serving(self) -> bool:
        return self._redis is not None and self._redis.serving()

    def _embedded_redis(self, port: int = 0) -> EmbeddedRedis:
        cfg = self.config.redis
        return EmbeddedRedis(cfg.data_dir or str(self.workdir / "redis"), port=port,
                             executable=cfg.server or find_vector_redis(),
                             log_path=str(self.workdir / "logs" / "redis.log"))  # kept too

    def kill(self, name: str) -> None:
        """SIGKILLs one child (failure tests): no graceful shutdown, no final writes."""
        (proc := self.child(name)).kill()
        proc.wait()

    def restart(self, name: str, timeout_s: float = 60.0) -> dict[str, object]:
        """Starts a stopped child again with its arguments, on the port it had before."""
        self.respawn(name)
        started = self._wait(self._named(name), timeout_s)
        self._note_metrics(name, started)  # a fresh metrics port unless one is configured
        return started

    def respawn(self, name: str) -> None:
        """restart, not waiting: `ready` says when it serves (`up` watches the others)."""
        old = self._named(name)
        if old.proc.poll() is None:
            raise RuntimeError(f"{name} is still running")
        info = json.loads(old.port_file.read_text())
        args = list(old.args)
        if "--port" in args:
            args[args.index("--port") + 1] = str(info["port"])
        if "--http-port" in args and info.get("http_address"):  # the gateway's HTTP API too
            args[args.index("--http-port") + 1] = str(info["http_address"]).rsplit(":", 1)[1]
        assert old.config_file is not None
        self._spawn(name, args, old.config_file, at=self._children.index(old))  # stop order
        self._children.remove(old)

    def ready(self, name: str) -> bool:
        """Whether child `name` (started again by `respawn`) has said it serves."""
        if started := self._named(name).port_file.exists():
            self._note_metrics(name, json.loads(self._named(name).port_file.read_text()))
        return started

    def close(self, *, keep_logs: bool = False) -> Path | None:
        """Stops every child and removes the mesh's own working folder. `keep_logs` (a
        service died, or the mesh did not start): the services' logs are copied out first,
        to a folder of their own; its path (None when not kept, or already in a folder the
        caller gave)."""
        self.stop()
        if self._tmp is None:
            return self.workdir / "logs" if keep_logs else None
        kept = None
        logs = self.workdir / "logs"
        if keep_logs and logs.is_dir():
            kept = Path(tempfile.mkdtemp(prefix="ostinato-logs-"))
            shutil.copytree(logs, kept, dirs_exist_ok=True)
        self._tmp.cleanup()
        if self._claim is not None:
            os.close(self._claim)
            self._claim = None
        return kept

    def __enter__(self) -> Mesh:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
