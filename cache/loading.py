"""An encoder that loads in a background thread at start, so the gateway serves at once.

Lookups that need it wait for the load (a few seconds on a cold start); a load failure
is raised to them (the cache then answers miss) and logged once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import numpy as np
import structlog

from cache.embedder import Encoder

log = structlog.get_logger(__name__)


class BackgroundEncoder:
    def __init__(self, load: Callable[[], Encoder]) -> None:
        self._encoder: Encoder | None = None
        self._error: BaseException | None = None
        self._ready = threading.Event()
        threading.Thread(target=self._load, args=(load,), name="embedder-load",
                         daemon=True).start()

    def _load(self, load: Callable[[], Encoder]) -> None:
        try:
            self._encoder = load()
            log.info("embedding model loaded")
        except Exception as exc:
            self._error = exc
            log.error("embedding model failed to load: semantic cache off", error=repr(exc))
        finally:
            self._ready.set()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self._ready.wait()  # runs in the embedder's worker thread, never on the event loop
        if self._encoder is None:
            raise RuntimeError(f"embedding model unavailable: {self._error!r}")
        return self._encoder.encode(texts)
