"""The KV events wire format against msgspec structs declared as SGLang declares its own
(tagged, array-like, omit_defaults), both ways, plus malformed payloads."""

from __future__ import annotations

import msgpack
import msgspec
import pytest

from workers.kv_events import (
    AllBlocksCleared,
    BadKvEvent,
    BlockRemoved,
    BlockStored,
    decode_batch,
    decode_seq,
    encode_batch,
    encode_seq,
    to_int64,
)

_OPTS = {"array_like": True, "omit_defaults": True, "gc": False}


class _Batch(msgspec.Struct, **_OPTS):  # type: ignore[call-arg]
    ts: float
    events: list


class _Event(msgspec.Struct, tag=True, **_OPTS):  # type: ignore[call-arg]
    pass


class _Stored(_Event, tag="BlockStored"):  # type: ignore[call-arg]
    block_hashes: list[int]
    parent_block_hash: int | None
    token_ids: list[int]
    block_size: int
    lora_id: int | None
    medium: str | None = None  # a later SGLang field: decoding must skip it


class _Removed(_Event, tag="BlockRemoved"):  # type: ignore[call-arg]
    block_hashes: list[int]
    medium: str | None = None


class _Cleared(_Event, tag="AllBlocksCleared"):  # type: ignore[call-arg]
    pass


class _EventBatch(_Batch):
    events: list[_Stored | _Removed | _Cleared]
    data_parallel_rank: int | None = None


def test_decodes_what_sglangs_structs_encode() -> None:
    payload = msgspec.msgpack.encode(_EventBatch(ts=12.5, events=[
        _Stored([-5, 7], None, [1, 2, 3, 4], 2, None, medium="GPU"),
        _Removed([-5]),
        _Cleared(),
    ], data_parallel_rank=0))
    ts, events = decode_batch(payload)
    assert ts == 12.5
    assert events == [BlockStored((-5, 7), None, (1, 2, 3, 4), 2, None), BlockRemoved((-5,)),
                      AllBlocksCleared()]


def test_sglangs_structs_decode_what_the_sim_engine_encodes() -> None:
    big = (1 << 64) - 3  # the sim's hashes are unsigned; the wire carries signed int64
    payload = encode_batch(3.0, [BlockStored((big,), 9, (5, 6), 2), BlockRemoved((big,)),
                                 AllBlocksCleared()])
    batch = msgspec.msgpack.decode(payload, type=_EventBatch)
    assert batch.events[0] == _Stored([to_int64(big)], 9, [5, 6], 2, None)
    assert batch.events[1] == _Removed([-3])
    assert isinstance(batch.events[2], _Cleared)


def test_unknown_event_kinds_are_skipped() -> None:
    payload = msgpack.packb([1.0, [["SomethingNew", 1], ["BlockRemoved", [4]]]])
    assert decode_batch(payload)[1] == [BlockRemoved((4,))]


@pytest.mark.parametrize("payload", [
    b"\xc1",  # not msgpack
    msgpack.packb({"ts": 1}),
    msgpack.packb([1.0]),
    msgpack.packb(["x", []]),
    msgpack.packb([1.0, [["BlockStored", [1], None, [1, 2]]]]),  # no block_size
    msgpack.packb([1.0, [["BlockStored", [1], "p", [1, 2], 2, None]]]),
    msgpack.packb([1.0, [["BlockStored", [1], None, [1, 2], 0, None]]]),
    msgpack.packb([1.0, [["BlockRemoved", ["a"]]]]),
    msgpack.packb([1.0, [[]]]),
])
def test_malformed_payloads_are_refused(payload: bytes) -> None:
    with pytest.raises(BadKvEvent):
        decode_batch(payload)


def test_sequence_numbers() -> None:
    assert decode_seq(encode_seq(5)) == 5
    assert encode_seq(-1) == b"\xff" * 8  # SGLang's end-of-replay marker
    with pytest.raises(BadKvEvent):
        decode_seq(b"\x00")


def test_sglang_0_5_23_tagged_map_events_decode() -> None:
    """SGLang 0.5.23 (read from its installed source) encodes events as tagged maps, optional
    fields at None omitted; the batch stays positional."""
    import msgpack

    from workers.kv_events import AllBlocksCleared, BlockRemoved, BlockStored, decode_batch

    payload = msgpack.packb([1.5, [
        {"type": "BlockStored", "block_hashes": [11, -12], "parent_block_hash": None,
         "token_ids": [5, 6], "block_size": 1, "lora_id": None, "medium": "GPU",
         "cache_salt": "tenant:acme"},
        {"type": "BlockRemoved", "block_hashes": [11], "medium": "GPU"},
        {"type": "AllBlocksCleared"},
        {"type": "SomethingNew", "x": 1},
    ], None])
    ts, events = decode_batch(payload)
    assert ts == 1.5 and events == [BlockStored((11, -12), None, (5, 6), 1, None),
                                    BlockRemoved((11,)), AllBlocksCleared()]
