"""An HTTP request that opened a conversation program and failed ends that program: its
caller learns of a program only from an answer, so nobody could continue or end it. The
failing call's own path ends it in most cases; not when n > 1 answers' calls were cut
because one sibling was refused (fuzz run 2026-12-07: a sibling refused at admission, the
others cancelled, the program left open, in the planner's memory and in Redis, until
planner.program_idle_ttl_s). A real PlannerService on loopback, no worker: the
first call waits, the planner's per-tenant queue bound refuses the next (or its time runs
out). Once its response began (a stream's headers out) the program stays: what it sent may
have named it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import grpc
import pytest
from aiohttp.test_utils import TestClient, TestServer

from cache.tenancy import Tenancy
from gateway.auth import ApiKeyAuthenticator
from gateway.call_items import CallFailed
from gateway.core import GatewayCore
from gateway.execution import CallExecutor
from gateway.http_api import OpenAiApi
from gateway.metrics import GatewayMetrics
from gateway.worker_channels import WorkerChannels
from ostinato.clock import SystemClock
from ostinato.gateway_config import GatewayConfig
from ostinato.v1 import common_pb2
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


def _auth() -> ApiKeyAuthenticator:
    return ApiKeyAuthenticator(lambda: Tenancy(tenants=frozenset({"acme"})), allow_anonymous=True)


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
@pytest.mark.parametrize("stream", [False, True])
async def test_n_answers_cut_by_a_refused_sibling_leave_no_program_open(
        path: str, stream: bool) -> None:
    core = PlannerCore(SystemClock(), *parse_policy("fcfs+round_robin"), max_queued_per_tenant=1)
    async with servicer_on_loopback(PlannerService(core, NoStore(), SystemClock())  # type: ignore[arg-type]
                                    ) as planner:
        config = GatewayConfig()
        gateway = GatewayCore(config, _auth(), planner, CallExecutor(planner, WorkerChannels()))
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


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hello"}]}),
    ("/v1/responses", {"input": "hello"}),  # (diff review 2026-12-07: left open there)
])
@pytest.mark.parametrize("stream", [False, True])
async def test_a_call_whose_time_runs_out_queued_leaves_no_program_open(
        path: str, body: dict[str, object], stream: bool) -> None:
    core = PlannerCore(SystemClock(), *parse_policy("fcfs+round_robin"))  # no worker
    async with servicer_on_loopback(PlannerService(core, NoStore(), SystemClock())  # type: ignore[arg-type]
                                    ) as planner:
        config = GatewayConfig(call_timeout_s=0.5)
        gateway = GatewayCore(config, _auth(), planner, CallExecutor(planner, WorkerChannels()))
        api = OpenAiApi(gateway, GatewayMetrics(config.model))
        async with TestClient(TestServer(api.app())) as client:
            resp = await client.post(path, json={**body, "model": config.model,
                                                 "stream": stream})
            assert resp.status == 504, await resp.text()
        await _until(lambda: core.programs_open == 0 and core.queued == 0)


class _Executor:
    """The executor's surface the gateway uses here: each call answered at once, except
    `fails`'s, which fails once the others have been answered."""

    def __init__(self, fails: str) -> None:
        self.fails = fails
        self.ended: list[str] = []
        self.answered = asyncio.Event()

    def answer_room(self) -> int:
        return 16

    def check_fit(self, call: common_pb2.CallSpec) -> None:
        return None

    async def run(self, tenant: str, program_id: str, call: common_pb2.CallSpec,
                  *args: object, **kwargs: object) -> AsyncGenerator[object, None]:
        if call.call_id.endswith(self.fails):
            await self.answered.wait()
            raise CallFailed(grpc.StatusCode.UNAVAILABLE, "the worker went away")
        self.answered.set()  # (the result goes out in the same step)
        yield common_pb2.CallResult(call_id=call.call_id, text="ok", finish_reason="stop")

    def end_unanswered(self, tenant: str, program_id: str) -> None:
        self.ended.append(program_id)


@pytest.mark.parametrize("stream", [False, True])
async def test_a_request_failing_after_its_first_answer_still_ends_its_program(
        stream: bool) -> None:
    """The fuzz flake's second form (CI, 2026-12-07): the first answer done, a sibling's
    failing; the caller got an error, no program id."""
    executor = _Executor(fails=".n1")
    config = GatewayConfig()
    gateway = GatewayCore(config, _auth(), None, executor)  # type: ignore[arg-type]
    api = OpenAiApi(gateway, GatewayMetrics(config.model))
    async with TestClient(TestServer(api.app())) as client:
        resp = await client.post("/v1/chat/completions", json={
            "model": config.model, "n": 2, "stream": stream,
            "messages": [{"role": "user", "content": "two answers, please"}]})
        assert resp.status == 503, await resp.text()
    assert len(executor.ended) == 1  # (the anonymous tenant's program)


@pytest.mark.parametrize(("told", "ended"), [(False, True), (True, False)])
async def test_a_program_whose_response_began_stays(told: bool, ended: bool) -> None:
    """Once the response began (a stream's headers out), what it sent may have named the
    program: the caller may go on with it."""
    executor = _Executor(fails="c")
    gateway = GatewayCore(GatewayConfig(), _auth(), None, executor)  # type: ignore[arg-type]
    question = [common_pb2.Message(role="user", content="an answer, please")]
    placed = await gateway.place("acme", common_pb2.CallSpec(call_id="c", messages=question),
                                 attribute=True)
    with pytest.raises(CallFailed):
        async with gateway.answering("acme", placed, lambda: told):
            executor.answered.set()
            async for _ in gateway.run("acme", placed, 10.0):
                pass
    assert executor.ended == ([placed.program_id] if ended else [])
