"""SGLang's KV cache events and their wire format (sglang/srt/disaggregation/kv_events.py).

An engine started with ``--kv-events-config '{"publisher": "zmq", "endpoint": "tcp://*:5557"}'``
publishes, on a ZMQ PUB socket, one multipart message per batch of events:

    [topic (bytes), sequence number (8 bytes, big-endian), payload (msgpack)]

The payload is a msgspec struct encoded array-like: ``[ts, events, ...]``. Events are tagged
by their class name. SGLang up to about 0.5.10 encodes them array-like too, the tag first:

    ["BlockStored", block_hashes, parent_block_hash, token_ids, block_size, lora_id, ...]
    ["BlockRemoved", block_hashes, ...]
    ["AllBlocksCleared"]

later versions (0.5.23, checked in its installed source) as tagged maps, with optional
fields left at None omitted (vLLM's encoding):

    {"type": "BlockStored", "block_hashes": [...], "parent_block_hash": ..., "token_ids":
     [...], "block_size": 1, "lora_id": null, "medium": "GPU", "cache_salt": ...}

Both are read; the sim engine publishes the array form.

Block hashes are the engine's own (SGLang's are SHA-256 chains cut to signed 64 bits); a
consumer must treat them as opaque names and link blocks through parent_block_hash. One
BlockStored may carry several consecutive blocks (``token_ids`` is their tokens in order,
``block_size`` each). Later SGLang versions append fields (a storage medium, a data-parallel
rank); decoding ignores trailing fields it does not know. Pure: no sockets here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgpack

SEQ_BYTES = 8
END_SEQ = (-1).to_bytes(SEQ_BYTES, "big", signed=True)  # ends a replay


@dataclass(frozen=True)
class BlockStored:
    block_hashes: tuple[int, ...]
    parent_block_hash: int | None
    token_ids: tuple[int, ...] = ()
    block_size: int = 0
    lora_id: int | None = None


@dataclass(frozen=True)
class BlockRemoved:
    block_hashes: tuple[int, ...]


@dataclass(frozen=True)
class AllBlocksCleared:
    pass


KvEvent = BlockStored | BlockRemoved | AllBlocksCleared


class BadKvEvent(ValueError):
    """A message that is not a KV event batch as SGLang publishes it."""


def to_int64(h: int) -> int:
    """An unsigned 64-bit hash in the signed range SGLang's events use."""
    return h - (1 << 64) if h >= (1 << 63) else h


def _encode_event(event: KvEvent) -> list[Any]:
    if isinstance(event, BlockStored):
        parent = None if event.parent_block_hash is None else to_int64(event.parent_block_hash)
        return ["BlockStored", [to_int64(h) for h in event.block_hashes], parent,
                list(event.token_ids), event.block_size, event.lora_id]
    if isinstance(event, BlockRemoved):
        return ["BlockRemoved", [to_int64(h) for h in event.block_hashes]]
    return ["AllBlocksCleared"]


def encode_batch(ts: float, events: Sequence[KvEvent]) -> bytes:
    return msgpack.packb([ts, [_encode_event(e) for e in events]])


def _ints(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, int) for v in value):
        raise BadKvEvent(f"{what}: expected a list of integers")
    return tuple(value)


_FIELDS = {"BlockStored": ("block_hashes", "parent_block_hash", "token_ids", "block_size", "lora_id"),
           "BlockRemoved": ("block_hashes",), "AllBlocksCleared": ()}


def _positional(raw: dict[Any, Any]) -> list[Any]:
    """A tagged-map event as the array form: [tag, fields in declaration order]."""
    tag = raw.get("type")
    if not isinstance(tag, str):
        raise BadKvEvent("event: a map event needs a string 'type'")
    return [tag, *(raw.get(name) for name in _FIELDS.get(tag, ()))]


def _decode_event(raw: Any) -> KvEvent | None:
    if isinstance(raw, dict):
        raw = _positional(raw)
    if not isinstance(raw, list | tuple) or not raw or not isinstance(raw[0], str):
        raise BadKvEvent("event: expected [tag, fields...]")
    tag = raw[0]
    if tag == "BlockStored":
        if len(raw) < 5:
            raise BadKvEvent("BlockStored: expected block_hashes, parent_block_hash, "
                             "token_ids, block_size")
        parent = raw[2]
        if parent is not None and not isinstance(parent, int):
            raise BadKvEvent("BlockStored.parent_block_hash: expected an integer or nil")
        if not isinstance(raw[4], int) or raw[4] < 1:
            raise BadKvEvent("BlockStored.block_size: expected a positive integer")
        lora = raw[5] if len(raw) > 5 and isinstance(raw[5], int) else None
        return BlockStored(_ints(raw[1], "BlockStored.block_hashes"), parent,
                           _ints(raw[3], "BlockStored.token_ids"), raw[4], lora)
    if tag == "BlockRemoved":
        if len(raw) < 2:
            raise BadKvEvent("BlockRemoved: expected block_hashes")
        return BlockRemoved(_ints(raw[1], "BlockRemoved.block_hashes"))
    if tag == "AllBlocksCleared":
        return AllBlocksCleared()
    return None  # an event kind this consumer does not know: skipped


def decode_batch(payload: bytes) -> tuple[float, list[KvEvent]]:
    """(ts, events) of one batch; unknown event kinds are dropped, malformed ones raise."""
    try:
        raw = msgpack.unpackb(payload, strict_map_key=False)
    except (ValueError, msgpack.UnpackException) as exc:
        raise BadKvEvent(f"payload is not msgpack: {exc}") from exc
    if not isinstance(raw, list | tuple) or len(raw) < 2 or not isinstance(raw[1], list | tuple):
        raise BadKvEvent("batch: expected [ts, events, ...]")
    if not isinstance(raw[0], int | float):
        raise BadKvEvent("batch.ts: expected a number")
    events = [e for e in (_decode_event(r) for r in raw[1]) if e is not None]
    return float(raw[0]), events


def encode_seq(seq: int) -> bytes:
    return seq.to_bytes(SEQ_BYTES, "big", signed=True)


def decode_seq(frame: bytes) -> int:
    if len(frame) != SEQ_BYTES:
        raise BadKvEvent(f"sequence number: expected {SEQ_BYTES} bytes, got {len(frame)}")
    return int.from_bytes(frame, "big", signed=True)
