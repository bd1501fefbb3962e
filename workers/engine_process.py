"""A worker's own SGLang server: launched with the flags the mesh needs, supervised, stopped.

`sglang_command` is pure: the launch command (``python -m sglang.launch_server`` for GPU
installs, the checkout's ``.cache/sglang-cpu/launch`` for real SGLang on CPU, or
``ostinato sim-engine``, which takes the same flags) with the model, address, priority
scheduling (the planner's priorities reach the engine) and KV events (the worker's index
follows them) set from the worker's config, then the operator's extra arguments.
`EngineProcess` is the asyncio shell: it starts the server, waits for ``/health_generate`` (a
real forward pass), restarts it with exponential backoff when it exits, and terminates it
(then kills it) on shutdown; a start that fails is an EngineStartError naming the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import signal
import socket
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import structlog

from ostinato.child_process import die_with_parent

log = structlog.get_logger(__name__)

# `make sglang-cpu`'s launcher, beside the package (not in the working directory)
SGLANG_CPU_LAUNCH = Path(__file__).resolve().parents[1] / ".cache" / "sglang-cpu" / "launch"


class EngineStartError(RuntimeError):
    """The launched engine exited before it was healthy, or was not healthy in time."""


@dataclass(frozen=True)
class EngineLaunch:
    launch: str  # the command, shell-quoted: "python -m sglang.launch_server", a script, ...
    model: str
    host: str
    port: int
    # where the engine publishes KV events ("": none) and serves their replay: ipc:// paths,
    # which SGLang's publisher binds (a tcp:// address with a concrete host it connects to)
    kv_events_endpoint: str = ""
    kv_replay_endpoint: str = ""
    extra_args: str = ""  # more launch_server flags, shell-quoted; they win over ours
    # an OTLP/gRPC collector (host:port): SGLang exports its request spans there, continuing
    # the traceparent the worker sends with each request ("": tracing off)
    otlp_traces_endpoint: str = ""
    # the model's reasoning format (SGLang's --reasoning-parser, "": none): SGLang then wraps
    # its grammar backend in ReasonerGrammarBackend, which holds a require_reasoning request's
    # json_schema / structural_tag back until the thinking's end tag
    # (sglang/srt/constrained/base_grammar_backend.py create_grammar_backend)
    reasoning_parser: str = ""


def sglang_command(spec: EngineLaunch) -> list[str]:
    """SGLang's launch_server flags (python/sglang/srt/server_args.py)."""
    if not spec.launch.strip():
        raise ValueError("worker.engine_launch: the engine's launch command is empty")
    if not spec.model:
        raise ValueError("worker.engine_model: the model path is required to launch an engine")
    # --incremental-streaming-output: each streamed event its new text only, not the whole
    # answer so far (a long answer's events would cost the square of its length to write
    # and read); the worker's client reads either kind (workers/sglang_client.py)
    cmd = [*shlex.split(spec.launch), "--model-path", spec.model, "--host", spec.host,
           "--port", str(spec.port), "--enable-priority-scheduling", "--schedule-policy", "fcfs",
           "--enable-metrics", "--incremental-streaming-output"]
    if spec.kv_events_endpoint:
        events = {"publisher": "zmq", "endpoint": spec.kv_events_endpoint}
        if spec.kv_replay_endpoint:
            events["replay_endpoint"] = spec.kv_replay_endpoint
        cmd += ["--kv-events-config", json.dumps(events)]
    if spec.otlp_traces_endpoint:
        endpoint = spec.otlp_traces_endpoint.split("://", 1)[-1].rstrip("/")
        cmd += ["--enable-trace", "--otlp-traces-endpoint", endpoint]
    if spec.reasoning_parser:
        cmd += ["--reasoning-parser", spec.reasoning_parser]
    return cmd + shlex.split(spec.extra_args)


def restart_delays(first_s: float = 1.0, cap_s: float = 30.0) -> list[float]:
    """Backoff before each restart of an engine that keeps crashing."""
    delays, d = [], first_s
    while d < cap_s:
        delays.append(d)
        d *= 2
    return [*delays, cap_s]


def kv_event_endpoints(name: str) -> tuple[str, str]:
    """An engine's KV events socket and their replay socket (ipc, bound by the engine), by a
    name unique on the machine. On Linux in the abstract namespace (`ipc://@...`): the
    kernel frees them with the last process that holds them, so an engine or worker that is
    SIGKILLed leaves no file behind (socket files piled up in /tmp); elsewhere files in the
    temporary folder, removed by `EngineProcess.stop`."""
    if sys.platform == "linux":
        return f"ipc://@ostinato-{name}-kv", f"ipc://@ostinato-{name}-kv-replay"
    base = Path(tempfile.gettempdir()) / f"ostinato-{name}-kv"
    return f"ipc://{base}", f"ipc://{base}-replay"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class EngineProcess:
    def __init__(self, spec: EngineLaunch, *, start_timeout_s: float = 300.0,
                 log_path: str | None = None) -> None:
        self.spec = spec
        self.url = f"http://{spec.host}:{spec.port}"
        self.restarts = 0
        self._start_timeout_s = start_timeout_s
        self._log_path = log_path
        self._proc: asyncio.subprocess.Process | None = None
        self._stopping = False

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    async def _spawn(self) -> None:
        cmd = sglang_command(self.spec)
        out = open(self._log_path, "ab") if self._log_path else None  # noqa: SIM115 - the child owns it
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *die_with_parent(cmd), stdout=out or asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        finally:
            if out is not None:
                out.close()
        log.info("engine launched", pid=self._proc.pid, command=shlex.join(cmd))

    async def _healthy(self) -> None:
        """Until /health_generate answers 200; raises if the process exits or time runs out."""
        deadline = asyncio.get_running_loop().time() + self._start_timeout_s
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            while True:
                if self._proc is None or self._proc.returncode is not None:
                    code = None if self._proc is None else self._proc.returncode
                    raise EngineStartError(f"the engine exited during start-up (status {code})"
                                           + self._log_note())
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.get(self.url + "/health_generate") as resp:
                        if resp.status == 200:
                            return
                if asyncio.get_running_loop().time() > deadline:
                    raise EngineStartError(f"the engine was not healthy within "
                                           f"{self._start_timeout_s:g} s "
                                           "(worker.engine_start_timeout_s)" + self._log_note())
                await asyncio.sleep(0.5)

    def _log_note(self) -> str:
        """The engine log's last line and where the log is, for a start-up error."""
        if not self._log_path:
            return ""
        try:
            lines = Path(self._log_path).read_text(errors="replace").splitlines()
        except OSError:
            lines = []
        last = next((line.strip() for line in reversed(lines) if line.strip()), "")
        return (f": {last[-300:]}" if last else "") + f" (its log: {self._log_path})"

    async def start(self) -> str:
        await self._spawn()
        try:
            await self._healthy()
        except BaseException:
            await self.stop()
            raise
        log.info("engine healthy", url=self.url)
        return self.url

    async def supervise(self) -> None:
        """Restarts the engine whenever it exits, until stop()."""
        delays = restart_delays()
        while not self._stopping:
            assert self._proc is not None
            code = await self._proc.wait()
            if self._stopping:
                return
            delay = delays[min(self.restarts, len(delays) - 1)]
            log.error("engine exited: restarting", code=code, in_s=delay, restarts=self.restarts)
            await asyncio.sleep(delay)
            self.restarts += 1
            await self._spawn()
            try:
                await self._healthy()
                log.info("engine restarted", url=self.url, restarts=self.restarts)
            except EngineStartError as exc:
                log.error("engine restart failed", error=str(exc))
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._proc.pid, signal.SIGKILL)

    async def stop(self, grace_s: float = 10.0) -> None:
        """The engine's process group stopped (SIGTERM, then SIGKILL past `grace_s`), and
        its KV event sockets removed (an engine killed leaves them: hundreds in /tmp after a
        day of tests)."""
        try:
            await self._stop(grace_s)
        finally:
            for endpoint in (self.spec.kv_events_endpoint, self.spec.kv_replay_endpoint):
                if endpoint.startswith("ipc://") and not endpoint.startswith("ipc://@"):
                    Path(endpoint.removeprefix("ipc://")).unlink(missing_ok=True)

    async def _stop(self, grace_s: float) -> None:
        self._stopping = True
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is not None:  # its leader gone: what it left of its group goes too
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            return
        # SGLang runs its scheduler and detokenizer as child processes: signal the group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), grace_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
        with contextlib.suppress(ProcessLookupError):  # children that outlived their parent
            os.killpg(proc.pid, signal.SIGKILL)


def default_launch(cpu: Path = SGLANG_CPU_LAUNCH) -> str:
    """Real SGLang on CPU when `make sglang-cpu` built it in this checkout (whatever the
    working directory), else SGLang's own module."""
    return shlex.quote(str(cpu)) if cpu.is_file() else "python -m sglang.launch_server"
