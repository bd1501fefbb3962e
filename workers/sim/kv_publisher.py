"""The sim engine's KV events publisher: SGLang's --kv-events-config, over a ZMQ PUB socket.

Config (JSON, SGLang's field names): ``publisher`` ("null" | "zmq"), ``endpoint`` (default
tcp://*:5557; an address with a wildcard host, ipc:// or inproc:// is bound, any other is
connected to, as SGLang does), ``topic`` (default ""), ``hwm`` (the PUB socket's high-water
mark: past it a slow subscriber loses messages, which it sees as a sequence gap).
SGLang's replay socket (``replay_endpoint``) is not offered: subscribers treat a gap as a
reset. Messages are [topic, 8-byte big-endian sequence number, msgpack batch]
(workers/kv_events.py). SIMULATED engine, real wire format.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass

import zmq

from ostinato.config import ConfigError
from workers.kv_events import KvEvent, encode_batch, encode_seq

FIELD = "sim_engine.kv_events_config"


@dataclass(frozen=True)
class KvEventsConfig:
    publisher: str = "null"
    endpoint: str = "tcp://*:5557"
    topic: str = ""
    hwm: int = 100_000

    @classmethod
    def parse(cls, raw: str) -> KvEventsConfig:
        if not raw:
            return cls()
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{FIELD}: not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{FIELD}: expected a JSON object")
        known = {"publisher", "endpoint", "topic", "hwm", "replay_endpoint", "buffer_steps",
                 "max_queue_size"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{FIELD}: unknown field {', '.join(unknown)}")
        if data.get("replay_endpoint"):
            raise ConfigError(f"{FIELD}.replay_endpoint: the sim engine has no replay socket")
        cfg = cls(**{k: data[k] for k in ("publisher", "endpoint", "topic", "hwm") if k in data})
        if cfg.publisher not in ("null", "zmq"):
            raise ConfigError(f"{FIELD}.publisher: must be null or zmq, got {cfg.publisher!r}")
        if not isinstance(cfg.endpoint, str) or "://" not in cfg.endpoint:
            raise ConfigError(f"{FIELD}.endpoint: expected e.g. tcp://*:5557")
        if not isinstance(cfg.hwm, int) or cfg.hwm < 1:
            raise ConfigError(f"{FIELD}.hwm: must be a positive integer")
        return cfg


def _binds(endpoint: str) -> bool:
    return "*" in endpoint or "::" in endpoint or endpoint.startswith(("ipc://", "inproc://"))


class ZmqKvPublisher:
    def __init__(self, config: KvEventsConfig) -> None:
        self._ctx = zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.PUB)
        self._sock.set_hwm(config.hwm)
        self._sock.setsockopt(zmq.LINGER, 0)
        if _binds(config.endpoint):
            self._sock.bind(config.endpoint)
        else:
            self._sock.connect(config.endpoint)
        self._topic = config.topic.encode()
        self._seq = 0
        self.dropped = 0

    def publish(self, events: Sequence[KvEvent]) -> None:
        """Sends one batch without blocking (a full queue drops it: subscribers see a gap)."""
        frames = (self._topic, encode_seq(self._seq), encode_batch(time.time(), events))
        self._seq += 1
        try:
            self._sock.send_multipart(frames, flags=zmq.NOBLOCK)
        except zmq.Again:
            self.dropped += 1

    def close(self) -> None:
        self._sock.close(linger=0)


def make_publisher(raw_config: str) -> ZmqKvPublisher | None:
    cfg = KvEventsConfig.parse(raw_config)
    return ZmqKvPublisher(cfg) if cfg.publisher == "zmq" else None
