"""The services' event loop: uvloop by default, asyncio's by choice, a clear error otherwise."""

from __future__ import annotations

import asyncio

import pytest

from ostinato.config import ConfigError, load_mesh_config
from ostinato.event_loop import loop_factory, run, running_loop_name


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
