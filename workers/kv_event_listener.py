"""A worker's subscription to its engine's KV events (SGLang's ZMQ publisher), feeding the
KV-reference index in Redis through the translator (workers/kv_event_translator.py).

Updates go to Redis in the order the engine published them, one batch at a time. Lost
information is never papered over:
- a gap in the engine's sequence numbers (the PUB socket dropped messages) is filled from the
  engine's replay socket when one is configured (SGLang's replay_endpoint) and still holds
  the missed batches; otherwise it resets the translator and clears the worker's index key:
  what the index says is then only what later events prove;
- a batch whose Redis update failed marks the index stale; the next heartbeat (`resync`)
  rewrites the key from the translator's view in one transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog
import zmq
import zmq.asyncio

from cache.kv_index import KvIndex
from workers.kv_event_translator import KvEventTranslator
from workers.kv_events import BadKvEvent, KvEvent, decode_batch, decode_seq, encode_seq

log = structlog.get_logger(__name__)


@dataclass
class ListenerStats:
    batches: int = 0
    gaps: int = 0
    replayed: int = 0  # missed batches recovered from the replay socket
    malformed: int = 0
    resyncs: int = 0


class KvEventListener:
    def __init__(self, endpoint: str, worker_id: str, translator: KvEventTranslator,
                 kv_index: KvIndex, *, topic: str = "", replay_endpoint: str = "",
                 replay_timeout_s: float = 1.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.endpoint = endpoint
        self.replay_endpoint = replay_endpoint
        self._replay_timeout_s = replay_timeout_s
        self.worker_id = worker_id
        self.translator = translator
        self._index = kv_index
        self._topic = topic.encode()
        self._clock = clock
        self._last_seq: int | None = None
        self._stale = False
        self.stats = ListenerStats()
        self._ctx = zmq.asyncio.Context.instance()
        self._sock = self._ctx.socket(zmq.SUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.SUBSCRIBE, self._topic)
        self._sock.connect(endpoint)
        self.ready = asyncio.Event()  # set once the first batch arrived

    async def run(self) -> None:
        log.info("kv events: subscribed", endpoint=self.endpoint)
        while True:
            frames = await self._sock.recv_multipart()
            try:
                await self.handle(frames)
            except Exception:  # a bug must not silently stop the index: start over from here
                log.exception("kv events: batch failed, index reset")
                self._stale = True  # (until the clear below is done)
                self.translator.reset()
                self._stale = not await self._index.clear(self.worker_id)

    async def handle(self, frames: list[bytes]) -> None:
        try:
            if len(frames) != 3:
                raise BadKvEvent(f"expected 3 frames, got {len(frames)}")
            seq = decode_seq(frames[1])
            _, events = decode_batch(frames[2])
        except BadKvEvent as exc:
            self.stats.malformed += 1
            log.warning("kv events: malformed message skipped", error=str(exc))
            return
        if self._last_seq is not None and seq > self._last_seq + 1:
            self.stats.gaps += 1
            missed = await self._replay(self._last_seq + 1, seq)
            if missed is None:
                log.warning("kv events: sequence gap, index reset", expected=self._last_seq + 1,
                            got=seq)
                self.translator.reset()
                self._stale = not await self._index.clear(self.worker_id)
            else:
                self.stats.replayed += len(missed)
                for batch in missed:
                    await self._apply(batch)
        elif self._last_seq is not None and seq <= self._last_seq:
            log.warning("kv events: sequence went back (engine restarted?), index reset",
                        last=self._last_seq, got=seq)
            self.translator.reset()
            self._stale = not await self._index.clear(self.worker_id)
        self._last_seq = seq
        await self._apply(events)
        self.ready.set()

    async def _apply(self, events: list[KvEvent]) -> None:
        self.stats.batches += 1
        now = self._clock()
        change = self.translator.apply(events, now)
        ok = True
        if change.cleared:
            ok = await self._index.clear(self.worker_id)
        if change.removed:
            ok = await self._index.remove(self.worker_id, change.removed) and ok
        if change.stored:
            ok = await self._index.publish(self.worker_id, change.stored, now) and ok
        self._stale = self._stale or not ok

    async def _replay(self, start: int, end: int) -> list[list[KvEvent]] | None:
        """Batches start..end-1 from the engine's replay socket, or None when it has none
        configured, does not answer in time or no longer holds them all."""
        if not self.replay_endpoint:
            return None
        sock = self._ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.replay_endpoint)
        got: dict[int, list[KvEvent]] = {}
        try:
            await sock.send_multipart([b"", encode_seq(start)])
            async with asyncio.timeout(self._replay_timeout_s):
                while True:
                    frames = await sock.recv_multipart()
                    if len(frames) != 3:
                        raise BadKvEvent(f"replay: expected 3 frames, got {len(frames)}")
                    seq = decode_seq(frames[1])
                    if seq < 0:  # end of replay
                        break
                    if start <= seq < end:
                        got[seq] = decode_batch(frames[2])[1]
        except (TimeoutError, BadKvEvent, zmq.ZMQError) as exc:
            log.warning("kv events: replay failed", error=str(exc) or type(exc).__name__)
            return None
        finally:
            sock.close(linger=0)
        if len(got) != end - start:
            return None  # the engine's buffer no longer reaches back that far
        return [got[s] for s in range(start, end)]

    async def resync(self) -> None:
        """Heartbeat: after Redis trouble, rewrite the key from the translator's view."""
        if not self._stale:
            await self._index.touch(self.worker_id)
            return
        if await self._index.replace(self.worker_id, self.translator.held_hashes(),
                                     self._clock()):
            self._stale = False
            self.stats.resyncs += 1
            log.info("kv events: index resynced after Redis trouble")

    def close(self) -> None:
        with contextlib.suppress(zmq.ZMQError):
            self._sock.close(linger=0)
