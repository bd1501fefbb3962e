"""A worker's own engine: the launch command (table-driven), and supervision of a real
process (the sim engine, which takes SGLang's launch flags): health, restart after a crash,
stop."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.ports import fixed_port
from workers.engine_process import (
    SGLANG_CPU_LAUNCH,
    EngineLaunch,
    EngineProcess,
    EngineStartError,
    default_launch,
    kv_event_endpoints,
    restart_delays,
    sglang_command,
)

ROOT = Path(__file__).parents[2]

BASE = EngineLaunch(launch="python -m sglang.launch_server", model="/m", host="127.0.0.1", port=30001)


@pytest.mark.parametrize(("spec", "tail"), [
    (BASE, []),
    (EngineLaunch(**{**BASE.__dict__, "kv_events_endpoint": "tcp://127.0.0.1:5557"}),
     ["--kv-events-config", json.dumps({"publisher": "zmq", "endpoint": "tcp://127.0.0.1:5557"})]),
    (EngineLaunch(**{**BASE.__dict__, "extra_args": "--max-total-tokens 4096 --mem-fraction-static 0.8"}),
     ["--max-total-tokens", "4096", "--mem-fraction-static", "0.8"]),
    # SGLang 0.5's flags (srt/arg_groups/fields/observability.py): endpoint as <ip>:<port>
    (EngineLaunch(**{**BASE.__dict__, "otlp_traces_endpoint": "http://127.0.0.1:4317"}),
     ["--enable-trace", "--otlp-traces-endpoint", "127.0.0.1:4317"]),
    # the grammar then waits for the thinking's end (ReasonerGrammarBackend)
    (EngineLaunch(**{**BASE.__dict__, "reasoning_parser": "qwen3"}),
     ["--reasoning-parser", "qwen3"]),
])
def test_launch_command_sets_what_the_mesh_needs(spec: EngineLaunch, tail: list[str]) -> None:
    cmd = sglang_command(spec)
    assert cmd[:3] == ["python", "-m", "sglang.launch_server"]
    assert cmd[3:14] == ["--model-path", "/m", "--host", "127.0.0.1", "--port", "30001",
                         "--enable-priority-scheduling", "--schedule-policy", "fcfs",
                         "--enable-metrics",  # GET /metrics (sglang:*)
                         "--incremental-streaming-output"]  # events carry their new text
    assert cmd[14:] == tail


@pytest.mark.parametrize(("spec", "needle"), [
    (EngineLaunch(**{**BASE.__dict__, "model": ""}), "engine_model"),
    (EngineLaunch(**{**BASE.__dict__, "launch": " "}), "engine_launch"),
])
def test_bad_launch_settings_name_the_field(spec: EngineLaunch, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        sglang_command(spec)


def test_restart_backoff_doubles_to_a_cap() -> None:
    assert restart_delays(1.0, 30.0) == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0]


async def _generate(url: str) -> dict:
    async with aiohttp.ClientSession() as http, http.post(url + "/generate", json={
            "text": "hello there", "sampling_params": {"max_new_tokens": 2}}) as resp:
        return dict(await resp.json())


async def test_supervised_engine_is_restarted_after_a_crash_and_stopped(tmp_path) -> None:  # type: ignore[no-untyped-def]
    spec = EngineLaunch(launch=f"{sys.executable} -m ostinato.cli sim-engine --zero-cost",
                        model="sim/tiny", host="127.0.0.1", port=fixed_port())
    process = EngineProcess(spec, start_timeout_s=60, log_path=str(tmp_path / "engine.log"))
    url = await process.start()
    supervising = asyncio.create_task(process.supervise())
    try:
        assert (await _generate(url))["meta_info"]["completion_tokens"] == 2
        first = process.pid
        assert first is not None
        os.killpg(first, signal.SIGKILL)  # the engine crashes
        for _ in range(600):  # bounded: up to 60 s for the restart and its health check
            if process.restarts == 1 and process.pid != first:
                try:
                    out = await _generate(url)
                    break
                except aiohttp.ClientError:
                    pass
            await asyncio.sleep(0.1)
        else:
            pytest.fail("the engine was not restarted")
        assert out["meta_info"]["completion_tokens"] == 2
    finally:
        await process.stop()
        supervising.cancel()
    with pytest.raises(aiohttp.ClientError):
        await _generate(url)
    assert "sim engine serving" in (tmp_path / "engine.log").read_text()


async def test_a_stopped_engine_leaves_no_kv_event_socket_behind(tmp_path: Path) -> None:
    """Killed (as SGLang's processes, SIGTERMed, can be), the engine leaves its ipc sockets;
    the worker's stop removes them."""
    events, replay = tmp_path / "kv", tmp_path / "kv-replay"
    spec = EngineLaunch(launch=f"{sys.executable} -m ostinato.cli sim-engine --zero-cost",
                        model="sim/tiny", host="127.0.0.1", port=fixed_port(),
                        kv_events_endpoint=f"ipc://{events}", kv_replay_endpoint=f"ipc://{replay}")
    process = EngineProcess(spec, start_timeout_s=60, log_path=str(tmp_path / "engine.log"))
    await process.start()
    try:
        assert events.exists() and replay.exists()
        assert process.pid is not None
        os.killpg(process.pid, signal.SIGKILL)
        assert process._proc is not None
        await asyncio.wait_for(process._proc.wait(), 30)
        assert events.exists() and replay.exists()  # what a killed engine leaves
    finally:
        await process.stop()
    assert not events.exists() and not replay.exists()


def _unix_names() -> set[str]:
    """The names of the machine's bound unix sockets (abstract ones as @name)."""
    lines = Path("/proc/net/unix").read_text().splitlines()[1:]
    return {line.split()[-1] for line in lines if len(line.split()) > 7}


@pytest.mark.skipif(sys.platform != "linux", reason="abstract unix sockets are Linux's")
async def test_a_killed_engine_leaves_nothing_of_the_kv_event_sockets_it_is_given(
        tmp_path: Path) -> None:
    """The sockets a worker gives its own engine are abstract ones: no file in /tmp, and
    gone with the engine even when nobody runs `stop` (a worker SIGKILLed left them)."""
    name = f"test-{os.getpid()}-{fixed_port()}"
    events, replay = kv_event_endpoints(name)
    assert events.startswith("ipc://@") and replay.startswith("ipc://@")
    spec = EngineLaunch(launch=f"{sys.executable} -m ostinato.cli sim-engine --zero-cost",
                        model="sim/tiny", host="127.0.0.1", port=fixed_port(),
                        kv_events_endpoint=events, kv_replay_endpoint=replay)
    process = EngineProcess(spec, start_timeout_s=60, log_path=str(tmp_path / "engine.log"))
    await process.start()
    try:
        bound = {e.removeprefix("ipc://") for e in (events, replay)}
        assert bound <= _unix_names()
        assert process.pid is not None and process._proc is not None
        os.killpg(process.pid, signal.SIGKILL)
        await asyncio.wait_for(process._proc.wait(), 30)
        assert not bound & _unix_names()
        assert not list(Path("/tmp").glob(f"*{name}*"))
    finally:
        await process.stop()


def test_the_cpu_launcher_is_found_beside_the_package_from_any_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`make sglang-cpu` builds it in the checkout; `ostinato up --engine sglang` run from
    elsewhere launched `python -m sglang.launch_server` instead (review F3)."""
    assert SGLANG_CPU_LAUNCH == ROOT / ".cache" / "sglang-cpu" / "launch"
    monkeypatch.chdir(tmp_path)
    launcher = tmp_path / "a dir" / "launch"
    launcher.parent.mkdir()
    launcher.write_text("#!/bin/sh\n")
    assert shlex.split(default_launch(launcher)) == [str(launcher)]
    assert default_launch(tmp_path / "none") == "python -m sglang.launch_server"


def _engine(tmp_path: Path, code: str, timeout_s: float = 30) -> EngineProcess:
    spec = EngineLaunch(launch=shlex.join([sys.executable, "-c", code]), model="/m",
                        host="127.0.0.1", port=fixed_port())
    return EngineProcess(spec, start_timeout_s=timeout_s, log_path=str(tmp_path / "engine.log"))


async def test_an_engine_that_exits_at_start_says_why_and_where_its_log_is(tmp_path: Path) -> None:
    process = _engine(tmp_path, "import sys; print('loading', flush=True); "
                                "sys.exit('/usr/bin/python: No module named sglang')")
    with pytest.raises(EngineStartError) as error:
        await process.start()
    assert str(error.value) == (
        "the engine exited during start-up (status 1): /usr/bin/python: No module named sglang "
        f"(its log: {tmp_path / 'engine.log'})")


async def test_an_engine_not_healthy_in_time_is_stopped_and_named(tmp_path: Path) -> None:
    process = _engine(tmp_path, "import time; time.sleep(30)", timeout_s=0.2)
    with pytest.raises(EngineStartError, match=r"^the engine was not healthy within 0\.2 s "
                                               r"\(worker\.engine_start_timeout_s\) \(its log: "):
        await process.start()
    assert process._proc is not None and process._proc.returncode is not None
