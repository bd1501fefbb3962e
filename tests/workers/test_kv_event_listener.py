"""The KV-reference index fed by engine KV events, all real: a sim-engine process publishing
SGLang's ZMQ wire format, a worker's listener and translator, Redis. Paired isolation: a
positive control for tenant A, then tenant B's identical prompt."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis
import yaml

from cache.block_hash import prefix_block_hashes, prompt_block_hashes
from cache.kv_index import KvIndex
from cache.redis_server import EmbeddedRedis
from ostinato.v1 import common_pb2, worker_pb2
from tests.conftest import spawn_service, stop_service
from tests.workers.test_service import worker_on_loopback
from workers.kv_event_listener import KvEventListener
from workers.kv_event_translator import KvEventTranslator
from workers.kv_events import BlockRemoved, BlockStored, encode_batch, encode_seq
from workers.sim.tokenizer import tokenize

WORKER = "w-test"  # worker_on_loopback's id


def prompt(topic: str) -> str:
    return f"Background for the analyst, on {topic}: figures, dates and sources. " * 40


@pytest.fixture
def events_engine(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A sim engine with a small KV pool (4000 tokens) publishing its KV events."""
    cfg = tmp_path / "engine.yaml"
    cfg.write_text(yaml.safe_dump({"sim_engine": {"max_total_tokens": 4000}}))
    endpoint = f"ipc://{tmp_path}/kv-events"
    proc, info = spawn_service(tmp_path, "sim-engine", "--config", str(cfg), "--kv-events-config",
                               json.dumps({"publisher": "zmq", "endpoint": endpoint}))
    yield str(info["address"]), endpoint
    stop_service(proc)


@pytest.fixture
async def index(redis_url: str) -> AsyncIterator[KvIndex]:
    client = aioredis.from_url(redis_url)
    await client.delete(f"ost:kv:{{w:{WORKER}}}:blocks")
    yield KvIndex(client, timeout_s=5.0)  # (a busy machine's stall is not an outage here)
    await client.aclose()


async def eventually(check: Callable[[], object], timeout_s: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await check():  # type: ignore[misc]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


def call(text: str, salt: str) -> worker_pb2.GenerateRequest:
    return worker_pb2.GenerateRequest(
        program_id="p", call_id=uuid.uuid4().hex[:6], cache_salt=salt, prompt=text,
        sampling=common_pb2.SamplingParams(max_new_tokens=8, ignore_eos=True))


async def test_index_follows_stores_evictions_and_flushes(events_engine: tuple[str, str],
                                                          index: KvIndex) -> None:
    url, endpoint = events_engine
    listener = KvEventListener(endpoint, WORKER, KvEventTranslator(), index)
    listening = asyncio.create_task(listener.run())

    async def held(text: str, salt: str) -> int:
        hashes = prompt_block_hashes(tokenize, text, salt)
        return (await index.longest_prefixes([WORKER], hashes))[WORKER]

    def whole(text: str) -> int:
        return len(prompt_block_hashes(tokenize, text, "x"))

    try:
        async with worker_on_loopback(url, 0, index, listener) as (stub, service, _):
            # ZMQ's slow joiner: calls of a throwaway tenant until one's events arrive
            for attempt in range(300):
                _ = [c async for c in stub.Generate(call("warm up " * 40, f"tenant:w{attempt}"))]
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(listener.ready.wait(), 0.1)
                    break
            assert listener.ready.is_set()
            first = prompt("tidal energy")
            _ = [c async for c in stub.Generate(call(first, "tenant:acme"))]
            await eventually(lambda: _eq(held(first, "tenant:acme"), whole(first)))  # control
            assert await held(first, "tenant:globex") == 0  # B's identical prompt: nothing
            _ = [c async for c in stub.Generate(call(first, "tenant:globex"))]
            await eventually(lambda: _eq(held(first, "tenant:globex"), whole(first)))
            assert await held(first, "tenant:acme") == whole(first)

            # Fill the 4000-token pool: the engine evicts the oldest prompts, the index follows.
            for topic in ("copper", "rivers", "glaciers", "tariffs", "orchards", "lighthouses"):
                _ = [c async for c in stub.Generate(call(prompt(topic), "tenant:acme"))]
            await eventually(lambda: _eq(held(first, "tenant:acme"), 0))
            assert await held(prompt("lighthouses"), "tenant:acme") == whole(prompt("lighthouses"))
            size = await index.size(WORKER)
            assert size == len(listener.translator.held_hashes()) > 0
            assert 0 < size <= 4000 // 16
            assert listener.translator.stats.blocks_removed > 0
            assert listener.translator.stats.unattributed == 0
            stats = await stub.Stats(worker_pb2.StatsRequest())
            assert stats.kv_index_source == "events" and stats.kv_index_blocks == size
            assert stats.kv_event_batches > 0 and stats.kv_event_gaps == 0
            await service.drain_reports()

        async with aiohttp.ClientSession() as http, \
                http.post(f"{url}/flush_cache") as resp:  # as an operator flushing the engine
            assert resp.status == 200
        await eventually(lambda: _eq(index.size(WORKER), 0))
        assert listener.stats.gaps == 0 and listener.stats.malformed == 0
    finally:
        listening.cancel()
        listener.close()


async def _eq(value: object, expected: object) -> bool:
    return await value == expected  # type: ignore[misc]


async def test_malformed_messages_and_gaps(index: KvIndex) -> None:
    translator = KvEventTranslator(block_size=2)
    listener = KvEventListener("ipc:///tmp/ostinato-nothing-here", WORKER, translator, index)
    try:
        translator.expect("r", "tenant:a", 0, [1, 2, 3, 4], 0.0)
        await listener.handle([b"", encode_seq(0), encode_batch(0.0, [
            BlockStored((1, 2), None, (1, 2, 3, 4), 2)])])
        assert await index.size(WORKER) == 2
        await listener.handle([b"", encode_seq(1), b"\xc1"])  # not msgpack: skipped
        await listener.handle([b"only one frame"])
        assert listener.stats.malformed == 2
        await listener.handle([b"", encode_seq(5), encode_batch(0.0, [])])  # 2..4 were lost
        assert listener.stats.gaps == 1 and await index.size(WORKER) == 0
        assert translator.engine_blocks == 0  # nothing it knew is trusted any more
    finally:
        listener.close()


async def test_redis_outage_is_repaired_by_a_resync(tmp_path: Path) -> None:
    """Batches applied while Redis is down are not lost: the next heartbeat after it is back
    rewrites the worker's key from the translator's view (additions and removals)."""
    first = EmbeddedRedis(str(tmp_path / "r1"))
    url = first.start()
    # (Redis down is refused at once: generous bounds cost nothing and keep a busy
    # machine's stall from passing for the outage)
    client = aioredis.from_url(url, socket_timeout=5.0, socket_connect_timeout=5.0)
    index = KvIndex(client, timeout_s=2.0)
    translator = KvEventTranslator(block_size=2)
    listener = KvEventListener("ipc:///tmp/ostinato-nothing-here", WORKER, translator, index)
    second: EmbeddedRedis | None = None
    try:
        translator.expect("r1", "tenant:a", 0, [1, 2, 3, 4], 0.0)
        translator.expect("r2", "tenant:a", 0, [7, 8], 0.0)
        await listener.handle([b"", encode_seq(0), encode_batch(0.0, [
            BlockStored((1, 2), None, (1, 2, 3, 4), 2)])])
        assert await index.size(WORKER) == 2
        first.stop()
        await listener.handle([b"", encode_seq(1), encode_batch(0.0, [
            BlockRemoved((2,)), BlockStored((3,), None, (7, 8), 2)])])  # lost on the way
        second = EmbeddedRedis(str(tmp_path / "r2"), port=first.port)  # back, empty
        second.start()
        await listener.resync()
        expected = sorted(prefix_block_hashes([1, 2], "tenant:a", block_size=2)
                          + prefix_block_hashes([7, 8], "tenant:a", block_size=2))
        members = await client.zrange(f"ost:kv:{{w:{WORKER}}}:blocks", 0, -1)
        assert sorted(int(m, 16) for m in members) == expected
        assert listener.stats.resyncs == 1
        await listener.resync()  # nothing stale any more: only the TTL is refreshed
        assert listener.stats.resyncs == 1
    finally:
        listener.close()
        await client.aclose()
        first.stop()
        if second is not None:
            second.stop()
