"""A long prompt is rendered and tokenized off the event loop (CallExecutor._prepared): on it,
1 MB took 65-140 ms before any quota was taken, and a tenant sending such prompts in a loop
(each refused past the context window, so never metered) took another tenant's p50 chat
latency from 23 to 286 ms (security review 2026-12-07). Which thread tokenizes, not how
long the loop stalls: the suite asserts no timings."""

from __future__ import annotations

import json
import threading

import grpc
import pytest

from gateway.call_items import CallFailed
from gateway.context_window import ContextWindow
from gateway.execution import OFF_LOOP_CHARS, CallExecutor
from gateway.worker_channels import WorkerChannels
from ostinato.sdk_types import call_spec
from ostinato.v1 import common_pb2


@pytest.mark.parametrize(("chars", "on_loop"), [
    (1_000, True),  # a short prompt: a thread's hop would cost more than it saves
    (OFF_LOOP_CHARS, False),
    (1_000_000, False),  # past the window: refused, after tokenizing in a thread
])
async def test_a_long_prompt_is_tokenized_off_the_event_loop(chars: int, on_loop: bool) -> None:
    executor = CallExecutor(None, WorkerChannels(),  # type: ignore[arg-type]
                            window=ContextWindow(131_072, 256))
    threads: list[threading.Thread] = []
    tokenize = executor._tokenize

    def watched(text: str) -> list[int]:
        threads.append(threading.current_thread())
        return tokenize(text)

    executor._tokenize = watched  # type: ignore[method-assign]
    call = call_spec(prompt=("lorem ipsum dolor sit amet " * 40_000)[:chars], max_tokens=2)
    prompt, _ = await executor._prepared(call)  # (what CallExecutor.run does first)
    assert prompt.ids == tokenize(call.prompt)
    assert threads and all((t is threading.main_thread()) == on_loop for t in threads)


async def test_a_prompt_past_the_window_is_refused_as_before() -> None:
    executor = CallExecutor(None, WorkerChannels(),  # type: ignore[arg-type]
                            window=ContextWindow(131_072, 256))
    call = call_spec(messages=[{"role": "user", "content": "lorem ipsum " * 100_000}],
                     max_tokens=2)
    call.call_id, call.thread_id = "c1", "main"
    with pytest.raises(CallFailed) as refused:
        async for _ in executor.run("t", "t/p", call, 10.0):
            pass
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_prompt_long_by_its_tools_is_rendered_off_the_event_loop() -> None:
    """"Long" by what the chat template renders, the tools' descriptions and schemas
    included, not by the messages' text alone (review 2026-12-07)."""
    executor = CallExecutor(None, WorkerChannels(),  # type: ignore[arg-type]
                            window=ContextWindow(1_000_000, 256))
    threads: list[threading.Thread] = []
    renderer = executor._renderer

    class _Watched:
        def render(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            threads.append(threading.current_thread())
            return renderer.render(*args, **kwargs)

    executor._renderer = _Watched()  # type: ignore[assignment]
    schema = {"type": "object", "properties": {
        f"field_{i}": {"type": "string", "description": "lorem ipsum dolor sit amet " * 4}
        for i in range(400)}}
    tool = common_pb2.Tool(name="lookup", description="lorem ipsum " * 2_000,
                           parameters_json=json.dumps(schema))
    call = common_pb2.CallSpec(messages=[common_pb2.Message(role="user", content="hi")],
                               tools=[tool])
    prompt, _ = await executor._prepared(call)
    assert len(prompt.text) > OFF_LOOP_CHARS
    assert threads and all(t is not threading.main_thread() for t in threads)
