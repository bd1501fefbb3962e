"""A chat template that refuses a call's messages (its raise_exception: Mistral's "roles must
alternate") answers INVALID_ARGUMENT (HTTP 400) before anything is taken or queued; it was
an unexpected error, a 500 (session 70)."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from gateway.call_items import CallFailed
from gateway.context_window import ContextWindow
from gateway.execution import CallExecutor
from gateway.worker_channels import WorkerChannels
from ostinato.sdk_types import call_spec
from ostinato.tokenizers import TemplateRefused


class _Refusing:
    def render(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
               template_kwargs: dict[str, Any] | None = None) -> tuple[str, list[int]]:
        raise TemplateRefused("the model's chat template refused the messages: "
                              "Conversation roles must alternate user/assistant")


@pytest.mark.parametrize("chars", [10, 40_000])  # (on the loop and in a thread)
async def test_a_refused_template_is_invalid_argument(chars: int) -> None:
    executor = CallExecutor(None, WorkerChannels(), renderer=_Refusing(),  # type: ignore[arg-type]
                            window=ContextWindow(131_072, 256))
    call = call_spec(messages=[{"role": "user", "content": "x" * chars}], max_tokens=2)
    call.call_id, call.thread_id = "c1", "main"
    with pytest.raises(CallFailed) as refused:
        async for _ in executor.run("t", "t/p", call, 10.0):
            pass
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "roles must alternate" in str(refused.value) and refused.value.param == "messages"
    with pytest.raises(CallFailed):
        executor.check_fit(call)
