"""Redis 8 vector sets as the semantic cache's server-side index: the pure part.

Vector sets (VADD / VSIM / VREM, built into Redis 8) keep an HNSW graph per key. The
semantic cache keeps one vector set per (tenant, context digest): the tenant and the
context (model, system prompt, earlier turns, sampling) must both match exactly, so both
are part of the key and a lookup is one VSIM on one key, with no FILTER expression whose
effort bound could drop a true match. Vectors are stored unquantized (NOQUANT): the
threshold and the near-miss guard work on full-precision cosine similarity.

An entry id starts with the context prefix, so a removal (eviction, expiry) finds the
vector set from the id alone, even after the entry's hash has expired.

VSIM's score is (1 + cosine) / 2 in [0, 1] (1: same direction); `cosine_of` maps it back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from redis.typing import EncodableT

from cache.redis_client import text

CONTEXT_CHARS = 32  # 128 bits of the context digest name the vector set
SEPARATOR = "."


def context_tag(context: str) -> str:
    """The part of a context digest that names its vector set."""
    if len(context) < CONTEXT_CHARS or SEPARATOR in context[:CONTEXT_CHARS]:
        raise ValueError("context must be a hex digest of at least 32 characters")
    return context[:CONTEXT_CHARS]


def entry_id(context: str, unique: str) -> str:
    return f"{context_tag(context)}{SEPARATOR}{unique}"


def context_prefix(entry: str) -> str | None:
    """The context prefix an entry id was made with; None for ids of another format."""
    prefix, sep, _ = entry.partition(SEPARATOR)
    return prefix if sep and len(prefix) == CONTEXT_CHARS else None


def _blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()


def vadd_args(key: str, vector: np.ndarray, entry: str) -> tuple[EncodableT, ...]:
    return ("VADD", key, "FP32", _blob(vector), entry, "NOQUANT")


def vsim_args(key: str, vector: np.ndarray, count: int) -> tuple[EncodableT, ...]:
    return ("VSIM", key, "FP32", _blob(vector), "WITHSCORES", "COUNT", count)


def vrem_args(key: str, entry: str) -> tuple[EncodableT, ...]:
    return ("VREM", key, entry)


def cosine_of(score: float) -> float:
    return 2.0 * float(score) - 1.0


def parse_vsim(reply: object) -> list[tuple[str, float]]:
    """VSIM ... WITHSCORES as (element, cosine similarity), most similar first.

    Accepts the raw RESP2 reply (a flat list: element, score, ...) and the mapping that
    redis-py 6+ parses it into; a missing key answers an empty list.
    """
    if reply is None:
        return []
    if isinstance(reply, Mapping):
        pairs = [(text(k), float(v)) for k, v in reply.items()]
    elif isinstance(reply, Sequence) and not isinstance(reply, (str, bytes)):
        if len(reply) % 2:
            raise ValueError(f"VSIM WITHSCORES reply of odd length {len(reply)}")
        pairs = [(text(reply[i]), float(text(reply[i + 1]))) for i in range(0, len(reply), 2)]
    else:
        raise ValueError(f"unexpected VSIM reply {reply!r}")
    pairs.sort(key=lambda p: -p[1])
    return [(element, cosine_of(score)) for element, score in pairs]
