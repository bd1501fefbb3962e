"""The sim engine's KV events publisher: SGLang's --kv-events-config, over ZMQ.

Config (JSON, SGLang's field names): ``publisher`` ("null" | "zmq"), ``endpoint`` (default
tcp://*:5557; an address with a wildcard host, ipc:// or inproc:// is bound, any other is
connected to, as SGLang does), ``topic`` (default ""), ``hwm`` (the PUB socket's high-water
mark: past it a slow subscriber loses messages, which it sees as a sequence gap),
``replay_endpoint`` (a ROUTER socket serving missed batches) and ``buffer_steps`` (how many
recent batches it keeps). Messages are [topic, 8-byte big-endian sequence number, msgpack
batch] (workers/kv_events.py).

Replay, as SGLang serves it: a client sends [empty, start sequence (8 bytes)]; it gets
[empty, seq, payload] for every buffered batch from there on, then [empty, -1, empty].
A thread serves replay requests, as in SGLang. SIMULATED engine, real wire format.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import zmq

from ostinato.config import ConfigError
from workers.kv_events import END_SEQ, KvEvent, decode_seq, encode_batch, encode_seq

FIELD = "sim_engine.kv_events_config"


@dataclass(frozen=True)
class KvEventsConfig:
    publisher: str = "null"
    endpoint: str = "tcp://*:5557"
    topic: str = ""
    hwm: int = 100_000
    replay_endpoint: str = ""
    buffer_steps: int = 10_000

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
        fields = ("publisher", "endpoint", "topic", "hwm", "replay_endpoint", "buffer_steps")
        unknown = sorted(set(data) - set(fields) - {"max_queue_size"})
        if unknown:
            raise ConfigError(f"{FIELD}: unknown field {', '.join(unknown)}")
        cfg = cls(**{k: data[k] for k in fields if data.get(k) is not None})
        if cfg.publisher not in ("null", "zmq"):
            raise ConfigError(f"{FIELD}.publisher: must be null or zmq, got {cfg.publisher!r}")
        for name in ("endpoint", "replay_endpoint"):
            value = getattr(cfg, name)
            if not isinstance(value, str) or (value and "://" not in value) or \
                    (name == "endpoint" and not value):
                raise ConfigError(f"{FIELD}.{name}: expected e.g. tcp://*:5557")
        for name in ("hwm", "buffer_steps"):
            if not isinstance(getattr(cfg, name), int) or getattr(cfg, name) < 1:
                raise ConfigError(f"{FIELD}.{name}: must be a positive integer")
        return cfg


def _binds(endpoint: str) -> bool:
    return "*" in endpoint or "::" in endpoint or endpoint.startswith(("ipc://", "inproc://"))


class ZmqKvPublisher:
    def __init__(self, config: KvEventsConfig) -> None:
        self._ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
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
        self._buffer: deque[tuple[int, bytes]] = deque(maxlen=config.buffer_steps)
        self._lock = threading.Lock()
        self._running = True
        self._replay_thread: threading.Thread | None = None
        if config.replay_endpoint:
            replay = self._ctx.socket(zmq.ROUTER)
            replay.setsockopt(zmq.LINGER, 0)
            replay.bind(config.replay_endpoint)
            self._replay_thread = threading.Thread(target=self._serve_replay, args=(replay,),
                                                   daemon=True, name="kv-events-replay")
            self._replay_thread.start()

    def publish(self, events: Sequence[KvEvent]) -> None:
        """Sends one batch without blocking (a full queue drops it: subscribers see a gap)."""
        seq, payload = self._seq, encode_batch(time.time(), events)
        self._seq += 1
        if self._replay_thread is not None:
            with self._lock:
                self._buffer.append((seq, payload))
        try:
            self._sock.send_multipart((self._topic, encode_seq(seq), payload), flags=zmq.NOBLOCK)
        except zmq.Again:
            self.dropped += 1

    def _serve_replay(self, sock: zmq.Socket) -> None:
        try:
            while self._running:
                if not sock.poll(100):
                    continue
                frames = sock.recv_multipart()
                if len(frames) != 3:
                    continue  # not [client, empty, start]: ignored, as SGLang does
                client, _, start_frame = frames
                try:
                    start = decode_seq(start_frame)
                except ValueError:
                    continue
                with self._lock:
                    missed = [(s, p) for s, p in self._buffer if s >= start]
                for s, p in missed:
                    sock.send_multipart((client, b"", encode_seq(s), p))
                sock.send_multipart((client, b"", END_SEQ, b""))
        finally:
            sock.close(linger=0)

    def close(self) -> None:
        self._running = False
        if self._replay_thread is not None:
            self._replay_thread.join(timeout=1.0)
        self._sock.close(linger=0)


def make_publisher(raw_config: str) -> ZmqKvPublisher | None:
    cfg = KvEventsConfig.parse(raw_config)
    return ZmqKvPublisher(cfg) if cfg.publisher == "zmq" else None
