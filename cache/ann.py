"""The in-process approximate nearest-neighbour index of the semantic cache (usearch HNSW).

One index per tenant, so the tenant is a hard filter, not a post-filter; the context
digest must match exactly too (checked on the candidates). Cosine metric over unit
vectors. Pure: cache/local_index.py keeps it in step with Redis.
"""

from __future__ import annotations

import numpy as np
from usearch.index import Index

from cache.semantic_index import Neighbour


class TenantIndexes:
    def __init__(self, dimensions: int) -> None:
        self._dims = dimensions
        self._indexes: dict[str, Index] = {}
        self._keys: dict[str, dict[int, tuple[str, str]]] = {}  # tenant -> label -> (id, ctx)
        self._labels: dict[tuple[str, str], int] = {}  # (tenant, id) -> label
        self._next = 0

    def __len__(self) -> int:
        return len(self._labels)

    def count(self, tenant: str) -> int:
        return len(self._keys.get(tenant, {}))

    def add(self, tenant: str, entry_id: str, context: str, vector: np.ndarray) -> None:
        if (tenant, entry_id) in self._labels:
            return
        index = self._indexes.get(tenant)
        if index is None:
            index = self._indexes[tenant] = Index(ndim=self._dims, metric="cos", dtype="f32")
        self._next += 1
        index.add(self._next, np.asarray(vector, dtype=np.float32))
        self._keys.setdefault(tenant, {})[self._next] = (entry_id, context)
        self._labels[(tenant, entry_id)] = self._next

    def remove(self, tenant: str, entry_id: str) -> None:
        label = self._labels.pop((tenant, entry_id), None)
        if label is not None:
            self._indexes[tenant].remove(label)
            self._keys[tenant].pop(label, None)

    def search(self, tenant: str, context: str, vector: np.ndarray, k: int = 8) -> list[Neighbour]:
        """The k nearest of the tenant's entries, then those under `context`."""
        index = self._indexes.get(tenant)
        if index is None or len(index) == 0:
            return []
        found = index.search(np.asarray(vector, dtype=np.float32), min(k, len(index)))
        out = []
        for label, distance in zip(found.keys, found.distances, strict=True):
            entry = self._keys[tenant].get(int(label))
            if entry is not None and entry[1] == context:
                out.append(Neighbour(entry[0], 1.0 - float(distance)))
        return out
