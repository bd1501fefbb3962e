"""The services' event loop: uvloop by default, asyncio's by choice, a clear error otherwise."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ostinato.config import ConfigError, load_mesh_config
from ostinato.event_loop import in_daemon_thread, loop_factory, run, running_loop_name

REPO = Path(__file__).resolve().parents[2]


async def _name() -> str:
    await asyncio.sleep(0)
    return running_loop_name()


@pytest.mark.parametrize(("choice", "runs_on"), [("uvloop", "uvloop"), ("asyncio", "asyncio")])
def test_a_coroutine_runs_on_the_chosen_loop(choice: str, runs_on: str) -> None:
    assert run(_name(), choice) == runs_on


def test_an_unknown_loop_is_refused() -> None:
    with pytest.raises(ValueError, match="uvloop, asyncio"):
        loop_factory("trio")


@pytest.mark.parametrize(("environ", "expected"), [
    ({}, "uvloop"), ({"OSTINATO_EVENT_LOOP": "asyncio"}, "asyncio")])
def test_the_mesh_config_names_the_loop(environ: dict[str, str], expected: str) -> None:
    assert load_mesh_config(None, environ=environ).event_loop == expected


def test_a_bad_loop_in_the_config_names_the_field() -> None:
    with pytest.raises(ConfigError, match="event_loop"):
        load_mesh_config(None, environ={"OSTINATO_EVENT_LOOP": "tokio"})


_STUCK = """
import asyncio, sys
from ostinato.event_loop import run

async def swallows() -> None:  # as redis-py did at times: a cancellation caught and lost
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            pass

async def main() -> None:
    asyncio.get_running_loop().create_task(swallows())
    await asyncio.sleep(0)
    print("main ended", flush=True)

run(main(), sys.argv[1], exit_within_s=float(sys.argv[2]) if len(sys.argv) > 2 else None)
"""


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_a_service_that_cannot_exit_dumps_its_stacks_and_exits_1(loop: str) -> None:
    """asyncio's final cancel of the tasks left waits for each to end: one that swallowed its
    cancellation hung the gateway until compose killed it. With `exit_within_s` the process
    writes every thread's stack and exits 1."""
    done = subprocess.run([sys.executable, "-c", _STUCK, loop, "0.5"], capture_output=True,
                          text=True, timeout=120, cwd=REPO)
    assert done.returncode == 1, done.stderr
    assert "main ended" in done.stdout
    assert "Timeout (0:00:00.500000)!" in done.stderr
    assert "in _cancel_all_tasks" in done.stderr  # the stacks: where it waited


def test_without_the_bound_it_would_hang() -> None:
    """The control: the same process without `exit_within_s` does not exit on its own."""
    with pytest.raises(subprocess.TimeoutExpired):
        subprocess.run([sys.executable, "-c", _STUCK, "asyncio"], capture_output=True,
                       text=True, timeout=3, cwd=REPO)


_LOADING = """
import asyncio, sys, threading
from ostinato.event_loop import in_daemon_thread, run

started, never = threading.Event(), threading.Event()

def load() -> None:  # a model load that outlasts the stop
    started.set()
    never.wait()

async def main() -> None:
    if sys.argv[2] == "to_thread":
        task = asyncio.ensure_future(asyncio.to_thread(load))
    else:
        task = asyncio.ensure_future(in_daemon_thread(load, "load"))
    while not started.is_set():
        await asyncio.sleep(0.01)
    task.cancel()  # the stop (Ctrl-C cancels the main task, and with it the load's await)
    try:
        await task
    except asyncio.CancelledError:
        print("load cancelled", flush=True)

run(main(), sys.argv[1], exit_within_s=3.0)
"""


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
@pytest.mark.parametrize(("how", "returncode"), [("in_daemon_thread", 0), ("to_thread", 1)])
def test_a_stop_during_a_long_load_exits_without_waiting_for_it(loop: str, how: str,
                                                                returncode: int) -> None:
    """The gateway loads its embedding model in a thread before it serves: stopped then, it
    exits at once (0). The control: through asyncio.to_thread the loop's close waits for the
    executor's thread, and the exit watchdog ends the process with 1."""
    done = subprocess.run([sys.executable, "-c", _LOADING, loop, how], capture_output=True,
                          text=True, timeout=120, cwd=REPO)
    assert "load cancelled" in done.stdout, done.stderr
    assert done.returncode == returncode, done.stderr


async def _loaded(fn: Callable[[], object]) -> object:
    return await in_daemon_thread(fn, "load")


def test_a_daemon_thread_hands_back_its_result_or_its_error() -> None:
    assert asyncio.run(_loaded(lambda: 42)) == 42

    def fails() -> object:
        raise OSError("no model here")

    with pytest.raises(OSError, match="no model here"):
        asyncio.run(_loaded(fails))
