"""An HTTP request that opened a conversation program and failed ends that program: its
caller learns of a program only from an answer, so nobody could continue or end it. The
failing call's own path ends it in most cases; not when n > 1 answers' calls were cut
because one sibling was refused (fuzz run 2026-12-07: a sibling refused at admission, the
others cancelled, the program left open, in the planner's memory and in Redis, until
planner.program_idle_ttl_s). A real PlannerService on loopback, no worker: the
first call waits, the planner's per-tenant queue bound refuses the next."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestClient, TestServer

from cache.tenancy import Tenancy
from gateway.auth import ApiKeyAuthenticator
from gateway.core import GatewayCore
from gateway.execution import CallExecutor
from gateway.http_api import OpenAiApi
from gateway.metrics import GatewayMetrics
from gateway.worker_channels import WorkerChannels
from ostinato.clock import SystemClock
from ostinato.gateway_config import GatewayConfig
from planner.core import PlannerCore
from planner.core.selection import parse_policy
from planner.service import PlannerService
from tests.planner.loopback import NoStore, servicer_on_loopback


async def _until(condition: object, bound_s: float = 30.0) -> None:
    """Until `condition()` holds (the bound is for a loaded machine, not a timing)."""
    deadline = asyncio.get_running_loop().time() + bound_s
    while not condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
@pytest.mark.parametrize("stream", [False, True])
async def test_n_answers_cut_by_a_refused_sibling_leave_no_program_open(
        path: str, stream: bool) -> None:
    core = PlannerCore(SystemClock(), *parse_policy("fcfs+round_robin"), max_queued_per_tenant=1)
    async with servicer_on_loopback(PlannerService(core, NoStore(), SystemClock())  # type: ignore[arg-type]
                                    ) as planner:
        config = GatewayConfig()
        auth = ApiKeyAuthenticator(lambda: Tenancy(tenants=frozenset({"acme"})),
                                   allow_anonymous=True)
        gateway = GatewayCore(config, auth, planner, CallExecutor(planner, WorkerChannels()))
        api = OpenAiApi(gateway, GatewayMetrics(config.model))
        body: dict[str, object] = {"model": config.model, "n": 3, "max_tokens": 4,
                                   "stream": stream}
        if path.endswith("chat/completions"):
            body["messages"] = [{"role": "user", "content": "three answers, please"}]
        else:
            body["prompt"] = "three answers, please"
        async with TestClient(TestServer(api.app())) as client:
            resp = await client.post(path, json=body)
            assert resp.status == 429, await resp.text()  # one waits, the next is refused
        await _until(lambda: core.programs_open == 0 and core.queued == 0)
