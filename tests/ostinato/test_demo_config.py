"""`ostinato demo`'s mesh config (ostinato/demo.py demo_config), without starting it: the
file and the environment count, a flag only when given (review F5)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ostinato.cli import _parse
from ostinato.demo import demo_config


@pytest.fixture(autouse=True)
def no_mesh_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in os.environ:
        if name.startswith("OSTINATO_"):
            monkeypatch.delenv(name)


# Rows: file text, environment, flags, the workers the demo starts.
WORKERS = [
    ("", {}, [], 2),
    ("workers: 3\n", {}, [], 3),
    ("", {"OSTINATO_WORKERS": "4"}, [], 4),
    ("workers: 3\n", {"OSTINATO_WORKERS": "4"}, [], 4),
    ("workers: 3\n", {"OSTINATO_WORKERS": "4"}, ["--workers", "1"], 1),
]


@pytest.mark.parametrize(("text", "env", "flags", "workers"), WORKERS)
def test_the_demos_workers_come_from_file_env_then_flag(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, env: dict[str, str],
        flags: list[str], workers: int) -> None:
    f = tmp_path / "mesh.yaml"
    f.write_text(text)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    cfg = demo_config(_parse(["demo", "--config", str(f), *flags]))
    assert cfg.workers == workers and cfg.gateway.allow_anonymous


def test_the_demos_redis_url_flag() -> None:
    args = _parse(["demo", "--redis-url", "redis://127.0.0.1:1/0"])
    assert demo_config(args).redis.url == "redis://127.0.0.1:1/0"
