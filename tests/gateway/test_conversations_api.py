"""The Conversations API's refusals (security review 2026-12-05 F1): a tenant at its stored
conversations' cap is RESOURCE_EXHAUSTED (a 429), items over a conversation's bytes a 400,
and Redis failing a 503 whose text does not carry Redis's error."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from cache.conversation_store import (
    ConversationStore,
    ConversationsUnavailable,
    TooManyConversations,
    TooManyItems,
)
from gateway.conversations_api import ConversationsApi
from gateway.core import GatewayError
from gateway.openai_format import BadRequest


class _Refusing:
    def __init__(self, exc: Exception) -> None:
        self._exc = exc

    async def create(self, *args: Any) -> Any:
        raise self._exc


def _api(exc: Exception) -> ConversationsApi:
    store: Any = _Refusing(exc)
    assert not isinstance(store, ConversationStore)
    return ConversationsApi(store, max_chars=10_000)


async def test_redis_failing_is_a_503_without_its_text() -> None:
    oom = ConversationsUnavailable("OOM command not allowed when used memory > 'maxmemory'. "
                                   "script: b3e96325, on @user_script:5.")
    with pytest.raises(GatewayError) as failed:
        await _api(oom).create("acme", {})
    assert failed.value.code == grpc.StatusCode.UNAVAILABLE
    assert "maxmemory" not in str(failed.value) and "script" not in str(failed.value)


async def test_a_tenant_at_its_cap_is_resource_exhausted() -> None:
    with pytest.raises(GatewayError) as refused:
        await _api(TooManyConversations("tenant 'acme' keeps 2 conversations")).create("acme", {})
    assert refused.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert refused.value.final  # HTTP: x-should-retry false (deleting one makes room, not time)
    with pytest.raises(BadRequest):
        await _api(TooManyItems("at most 200 bytes")).create("acme", {})
