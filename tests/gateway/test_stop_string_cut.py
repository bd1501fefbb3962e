"""An answer is read as cut short only where it was: at max tokens, or at one of the
caller's stop strings (its worker's GenerateResult.stop_string), not where the model's own
end-of-sequence token ended it, with finish_reason "stop" all the same. Cut, a tool call it
left unfinished is dropped, its markup no answer (framework review F3); not cut, the answer
is whole, tag-like text and all (the diff review found every answer of a call naming stop
strings read as cut)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from cache.tenancy import Tenancy, TenantLimits
from ostinato.v1 import common_pb2, worker_pb2
from tests.gateway.stand_in_worker import gateway_on

PROSE = "Wrap each call in <tool_call> tags, then wait."


@pytest.mark.parametrize(("stop_string", "content"), [
    (False, PROSE),  # ended by the model: whole
    (True, "Wrap each call in"),  # cut at a stop string: the half-written "call" dropped
])
async def test_only_a_matched_stop_string_cuts_the_answer(stop_string: bool,
                                                          content: str) -> None:
    async def answer(request: worker_pb2.GenerateRequest
                     ) -> AsyncIterator[worker_pb2.GenerateChunk]:
        yield worker_pb2.GenerateChunk(delta=PROSE, result=worker_pb2.GenerateResult(
            finish_reason="stop", stop_string=stop_string))

    tenancy = Tenancy(tenants=frozenset({"acme"}), limits={"acme": TenantLimits()})
    async with gateway_on(answer, tenancy) as gateway:
        call = common_pb2.CallSpec(
            messages=[common_pb2.Message(role="user", content="how do I call tools?")],
            tools=[common_pb2.Tool(name="lookup")],
            sampling=common_pb2.SamplingParams(max_new_tokens=32, stop=["\nObservation:"]))
        placed = await gateway.place("acme", call)
        items = [item async for item in gateway.run("acme", placed, 30.0)]
    result = items[-1]
    assert isinstance(result, common_pb2.CallResult)
    assert (result.text, list(result.tool_calls)) == (content, [])
