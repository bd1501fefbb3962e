"""The mesh on real SGLang (`make test-engine`): SGLang 0.5 on CPU, torch-native attention, a
tiny random-weight Llama built locally (its text is gibberish), CUDA kernels stubbed; built
by `make sglang-cpu` into .cache/sglang-cpu. Timings here mean nothing; mechanisms do."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest

from ostinato.config import load_mesh_config
from ostinato.mesh import Mesh
from tests.ports import fixed_port
from workers.engine_process import EngineLaunch, EngineProcess
from workers.sglang_client import SGLangClient

BUILD = Path(__file__).resolve().parents[2] / ".cache" / "sglang-cpu"
MODEL = BUILD / "model"
KEYS = {"key-acme-engine": "acme", "key-globex-engine": "globex"}
# A small KV pool (the tiny model's KV is a few KiB a token) and two engines on 2 cores.
ENGINE_ARGS = ("--max-total-tokens 16384 --max-running-requests 8 --mem-fraction-static 0.5 "
               "--constrained-json-disable-any-whitespace")


@pytest.fixture(scope="session")
def engine_build() -> Path:
    if not (BUILD / "launch").is_file() or not (MODEL / "config.json").is_file():
        pytest.fail("real SGLang is not built: run `make sglang-cpu` (make test-engine does)")
    return BUILD


@contextmanager
def engine_mesh(engine_build: Path, workdir: str, workers: int, worker: dict[str, Any],
                gateway: dict[str, Any]) -> Iterator[Mesh]:
    """A mesh whose `workers` each launch a real SGLang on the tiny model, with the gateway
    tokenizing as it does; `worker` and `gateway` add to (or change) their settings."""
    model = str(MODEL)
    cfg = load_mesh_config(None, environ={}, overrides={
        "workers": workers,
        "worker": {"engine": "sglang", "engine_model": model,
                   "engine_launch": str(engine_build / "launch"), "engine_args": ENGINE_ARGS,
                   "kv_tokenizer": f"hf:{model}",
                   # engines starting at once on a busy 2-core machine: once over 400 s
                   "engine_start_timeout_s": 600, **worker},
        "gateway": {"kv_tokenizer": f"hf:{model}", "model": "tiny-llama", "http_port": 0,
                    "allow_anonymous": False, "semantic_cache": False, "cache_mode": "off",
                    # random weights seldom write EOS: a call naming no max tokens would run
                    # to the window's end (4,096) on these CPUs
                    "default_max_new_tokens": 256, **gateway},
    })
    mesh = Mesh(cfg, ephemeral_ports=True, workdir=workdir)
    mesh.start(timeout_s=700)
    try:
        yield mesh
    finally:
        mesh.close()


@pytest.fixture(scope="session")
def sglang_mesh(engine_build: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    with engine_mesh(engine_build, str(tmp_path_factory.mktemp("sglang-mesh")), 2,
                     {"max_inflight": 4, "heartbeat_s": 0.5},
                     {"tool_call_parser": "llama3", "api_keys": KEYS}) as mesh:
        yield mesh


@asynccontextmanager
async def engine(launch: str, model: str, tmp: Path, name: str,
                 extra_args: str) -> AsyncIterator[SGLangClient]:
    """One engine of its own, launched as a worker launches it, and a client of it."""
    spec = EngineLaunch(launch=launch, model=model, host="127.0.0.1", port=fixed_port(),
                        extra_args=extra_args)
    process = EngineProcess(spec, start_timeout_s=600, log_path=str(tmp / f"{name}.log"))
    client = SGLangClient(await process.start())
    try:
        yield client
    finally:
        await client.close()
        await process.stop()
