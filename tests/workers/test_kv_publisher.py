"""The sim engine's KV events publisher: its config, and its replay socket filling a
subscriber's sequence gap (real ZMQ sockets, real Redis)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from cache.block_hash import prefix_block_hashes
from cache.kv_index import KvIndex
from ostinato.config import ConfigError
from workers.kv_event_listener import KvEventListener
from workers.kv_event_translator import KvEventTranslator
from workers.kv_events import BlockRemoved, BlockStored, encode_batch, encode_seq
from workers.sim.kv_publisher import KvEventsConfig, ZmqKvPublisher

WORKER = "w-replay"


@pytest.mark.parametrize(("raw", "message"), [
    ("{", "not JSON"),
    ("[1]", "expected a JSON object"),
    ('{"publisher": "kafka"}', "publisher"),
    ('{"publisher": "zmq", "endpoint": "localhost"}', "endpoint"),
    ('{"publisher": "zmq", "replay_endpoint": "nowhere"}', "replay_endpoint"),
    ('{"publisher": "zmq", "hwm": 0}', "hwm"),
    ('{"publisher": "zmq", "buffer_steps": -1}', "buffer_steps"),
    ('{"publisher": "zmq", "colour": "red"}', "unknown field colour"),
])
def test_bad_configs_are_refused_naming_the_field(raw: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        KvEventsConfig.parse(raw)


def test_sglang_style_config_parses() -> None:
    cfg = KvEventsConfig.parse(json.dumps({"publisher": "zmq", "endpoint": "tcp://*:5557",
                                           "replay_endpoint": "tcp://*:5558",
                                           "buffer_steps": 100, "max_queue_size": 10}))
    assert (cfg.endpoint, cfg.replay_endpoint, cfg.buffer_steps) == \
        ("tcp://*:5557", "tcp://*:5558", 100)
    assert KvEventsConfig.parse("").publisher == "null"


@pytest.fixture
async def index(redis_url: str) -> AsyncIterator[KvIndex]:
    client = aioredis.from_url(redis_url)
    await client.delete(f"ost:kv:{{w:{WORKER}}}:blocks")
    yield KvIndex(client, timeout_s=5.0)  # (a busy machine's stall is not an outage here)
    await client.aclose()


@pytest.mark.parametrize("buffer_steps", [10, 1])
async def test_a_gap_is_filled_from_the_replay_socket(tmp_path: Path, index: KvIndex,
                                                      buffer_steps: int) -> None:
    """Batches 1 and 2 never reach the subscriber. With a buffer holding them, the listener
    replays them and the index ends exact; with a buffer of one batch it cannot, and resets."""
    batches = [
        [BlockStored((1,), None, (1, 2), 2)],
        [BlockStored((2,), 1, (3, 4), 2)],
        [BlockRemoved((2,)), BlockStored((3,), 1, (5, 6), 2)],
        [BlockStored((4,), 3, (7, 8), 2)],
    ]
    publisher = ZmqKvPublisher(KvEventsConfig(
        publisher="zmq", endpoint=f"ipc://{tmp_path}/pub",
        replay_endpoint=f"ipc://{tmp_path}/replay", buffer_steps=buffer_steps))
    translator = KvEventTranslator(block_size=2)
    listener = KvEventListener(f"ipc://{tmp_path}/pub", WORKER, translator, index,
                               replay_endpoint=f"ipc://{tmp_path}/replay", replay_timeout_s=30.0)
    try:
        translator.expect("r", "tenant:a", 0, [1, 2, 3, 4], 0.0)
        translator.expect("r2", "tenant:a", 0, [1, 2, 5, 6, 7, 8], 0.0)  # the branch after
        for b in batches:
            publisher.publish(b)  # fills the replay buffer
        await listener.handle([b"", encode_seq(0), encode_batch(0.0, batches[0])])
        await listener.handle([b"", encode_seq(3), encode_batch(0.0, batches[3])])  # 1, 2 lost
        members = {int(m, 16) for m in
                   await index._redis.zrange(f"ost:kv:{{w:{WORKER}}}:blocks", 0, -1)}
        assert listener.stats.gaps == 1
        if buffer_steps == 10:
            held = prefix_block_hashes([1, 2, 5, 6, 7, 8], "tenant:a", block_size=2)
            assert listener.stats.replayed == 2 and members == set(held)
        else:  # reset: batch 3's parent is no longer known, so nothing is claimed
            assert listener.stats.replayed == 0 and members == set()
    finally:
        listener.close()
        publisher.close()
