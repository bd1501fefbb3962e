"""Programs without headers: which earlier call a request continues (digests pure; the index
in a real Redis and a Redis Cluster)."""

from __future__ import annotations

from cache import keys
from cache.conversations import (
    Continuation,
    ConversationIndex,
    candidate_prefixes,
    conversation_digest,
)
from ostinato.sdk_types import call_spec
from ostinato.v1 import common_pb2
from tests.redis_cluster import RedisTarget


def msgs(*turns: tuple[str, str]) -> common_pb2.CallSpec:
    return call_spec(messages=[{"role": r, "content": c} for r, c in turns])


def answer(text: str = "", *calls: tuple[str, str, str]) -> common_pb2.CallResult:
    return common_pb2.CallResult(text=text, tool_calls=[
        common_pb2.ToolCall(id=i, name=n, arguments=a) for i, n, a in calls])


def test_candidates_end_at_assistant_turns_longest_first() -> None:
    call = msgs(("user", "a"), ("assistant", "b"), ("user", "c"), ("assistant", "d"), ("user", "e"))
    first = conversation_digest("t", call, call.messages[:2])
    second = conversation_digest("t", call, call.messages[:4])
    assert candidate_prefixes("t", call) == [second, first]
    assert candidate_prefixes("t", msgs(("user", "a"))) == []


def test_tenant_model_and_tools_separate_conversations() -> None:
    call = msgs(("user", "a"), ("assistant", "b"))
    base = conversation_digest("t", call, call.messages)
    assert conversation_digest("u", call, call.messages) != base
    other_model = msgs(("user", "a"), ("assistant", "b"))
    other_model.model = "m2"
    assert conversation_digest("t", other_model, other_model.messages) != base
    with_tool = msgs(("user", "a"), ("assistant", "b"))
    with_tool.tools.append(common_pb2.Tool(name="f"))
    assert conversation_digest("t", with_tool, with_tool.messages) != base


def test_arguments_reserialized_by_a_framework_still_match() -> None:
    sent = msgs(("user", "a"), ("assistant", ""))
    sent.messages[1].tool_calls.append(common_pb2.ToolCall(id="c", name="f", arguments='{"x": 1,"y":[2]}'))
    back = msgs(("user", "a"), ("assistant", ""))
    back.messages[1].tool_calls.append(common_pb2.ToolCall(id="c", name="f", arguments='{"y": [2], "x": 1}'))
    assert conversation_digest("t", sent, sent.messages) == conversation_digest("t", back, back.messages)


async def test_the_index_links_turns_and_branches(redis_target: RedisTarget) -> None:
    client = redis_target.client()
    index = ConversationIndex(client, idle_ttl_s=60, timeout_s=1.0)
    try:
        first = msgs(("user", "plan a trip"))
        first.call_id, first.thread_id = "c1", "main"
        assert await index.find("acme", first) is None
        await index.record("acme", first, answer("", ("id1", "search", '{"q": "x"}')), "prog-1")
        follow = msgs(("user", "plan a trip"), ("assistant", ""), ("tool", "found"))
        follow.messages[1].tool_calls.append(common_pb2.ToolCall(id="id1", name="search",
                                                                 arguments='{"q": "x"}'))
        one = await index.find("acme", follow)
        two = await index.find("acme", follow)  # a second request extending the same call
        assert one is not None and two is not None
        assert (one.program_id, one.parent_call_id, one.thread_id) == ("prog-1", "c1", "main")
        assert (two.program_id, two.parent_call_id, two.thread_id) == ("prog-1", "c1", "main.2")
        assert await index.find("globex", follow) is None  # never across tenants
        # a stored response continued by id: its branches counted as long as it is kept
        parent = Continuation("prog-1", "c9", "main")
        assert (await index.branch("acme", parent, ttl_s=3_600)).thread_id == "main"
        assert (await index.branch("acme", parent, ttl_s=3_600)).thread_id == "main.2"
        kids = keys.conversation_children("acme", "prog-1", "c9")
        assert 60_000 < await client.pttl(kids) <= 3_600_000
        unrelated = msgs(("user", "plan a trip"), ("assistant", "something else"), ("user", "?"))
        assert await index.find("acme", unrelated) is None
    finally:
        await client.aclose()
