"""The worker waiting for its engine at start (workers/main.py): the engine's server info as
soon as it answers; while it does not, a warning; past the limit, an exit naming the engine
and the setting (the worker used to wait 60 s in silence, then die with a traceback)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest
import structlog

from cache.redis_server import free_port
from ostinato.service_config import WorkerConfig
from workers.main import _wait_for_engine, reasoning_parser_mismatch, serve
from workers.sglang_client import SGLangClient


async def test_an_engine_that_answers_is_not_waited_for(sim_engine_url: str) -> None:
    client = SGLangClient(sim_engine_url)
    try:
        info = await _wait_for_engine(client, timeout_s=5.0)
    finally:
        await client.close()
    assert info["model_path"]


async def test_no_engine_warns_then_exits_naming_it() -> None:
    url = f"http://127.0.0.1:{free_port('127.0.0.1')}"  # nothing listens there
    client = SGLangClient(url, connect_retries=1)
    try:
        with structlog.testing.capture_logs() as logs, pytest.raises(SystemExit) as exit_:
            await _wait_for_engine(client, timeout_s=2.0)
    finally:
        await client.close()
    message = str(exit_.value.code)
    assert message.startswith(f"ostinato worker: the engine at {url} did not answer within 2 s")
    assert "worker.engine_start_timeout_s" in message
    warnings = [e for e in logs if e["event"] == "waiting for the engine"]
    assert warnings and warnings[0]["engine"] == url and warnings[0]["log_level"] == "warning"


@pytest.mark.parametrize(("info", "expected", "problem"), [
    ({"reasoning_parser": "qwen3"}, "qwen3", None),
    ({"reasoning_parser": None}, "", None),  # the gateway reads no thinking: nothing to hold
    ({"reasoning_parser": "qwen3"}, "", None),
    ({}, "qwen3", None),  # the engine does not say
    ({"reasoning_parser": None}, "qwen3", "--reasoning-parser (none) but the gateway reads qwen3"),
    ({"reasoning_parser": "deepseek-r1"}, "qwen3", "--reasoning-parser deepseek-r1 but"),
])
def test_an_engine_launched_without_the_gateways_reasoning_parser_is_named(
        info: dict, expected: str, problem: str | None) -> None:
    said = reasoning_parser_mismatch(info, expected)
    assert (said is None) if problem is None else (said is not None and problem in said)


async def test_the_sim_engine_says_its_reasoning_parser(sim_engine_url: str) -> None:
    """The fixture's sim engine thinks in no format: as an SGLang launched without one."""
    client = SGLangClient(sim_engine_url)
    try:
        info = await _wait_for_engine(client, timeout_s=5.0)
    finally:
        await client.close()
    assert "reasoning_parser" in info and info["reasoning_parser"] is None
    assert reasoning_parser_mismatch(info, "qwen3") is not None


async def test_a_launched_engine_that_exits_at_start_is_a_reason_not_a_traceback(
        tmp_path: Path) -> None:
    """(review F3) The worker exits 1 with one line, as for an attached engine."""
    config = WorkerConfig(engine="sglang", engine_model="/m", engine_launch=shlex.join(
        [sys.executable, "-c", "import sys; sys.exit('No module named sglang')"]))
    with pytest.raises(SystemExit) as exit_:
        await serve(config, engine_log=str(tmp_path / "engine-0.log"))
    assert str(exit_.value.code) == (
        "ostinato worker: the engine exited during start-up (status 1): No module named sglang "
        f"(its log: {tmp_path / 'engine-0.log'})")
