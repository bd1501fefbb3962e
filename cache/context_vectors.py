"""The in-process index of the semantic cache: exact cosine search per (tenant, context).

A lookup may only be answered by an entry of the same tenant under the same context digest,
so the vectors are kept in one block per (tenant, context) and searched there, exactly: a
matrix-vector product over the block (a tenant holds at most
`cache_max_entries_per_tenant`, 10,000 by default; 10,000 x 384 float32 is one product of
well under a millisecond). An approximate index over all of a tenant's entries, filtered
by context after the search, lost the request's own entry behind other contexts' nearer
ones, and its graph broke down under many identical vectors (docs/reviews/2026-12-05/cache,
F2). Pure: cache/local_index.py keeps it in step with Redis.
"""

from __future__ import annotations

import numpy as np

from cache.semantic_index import Neighbour


class _Block:
    """One (tenant, context)'s unit vectors: rows of a matrix that doubles as it fills; a
    removed row takes the last row's place."""

    def __init__(self, dimensions: int) -> None:
        self.matrix = np.empty((1, dimensions), dtype=np.float32)
        self.ids: list[str] = []
        self.row: dict[str, int] = {}

    def add(self, entry_id: str, vector: np.ndarray) -> None:
        n = len(self.ids)
        if n == len(self.matrix):
            grown = np.empty((2 * n, self.matrix.shape[1]), dtype=np.float32)
            grown[:n] = self.matrix
            self.matrix = grown
        self.matrix[n] = vector
        self.ids.append(entry_id)
        self.row[entry_id] = n

    def remove(self, entry_id: str) -> None:
        row = self.row.pop(entry_id)
        last = len(self.ids) - 1
        if row != last:
            moved = self.ids[last]
            self.matrix[row] = self.matrix[last]
            self.ids[row] = moved
            self.row[moved] = row
        self.ids.pop()

    def nearest(self, vector: np.ndarray, k: int) -> list[Neighbour]:
        n = len(self.ids)
        # einsum, not BLAS: OpenBLAS's threads fight the embedder's (torch) on a small
        # machine (bench cache, 10,000 entries on 2 cores: p50 30 ms with `@`, 13 with this)
        similarity = np.einsum("ij,j->i", self.matrix[:n], vector)
        top = np.arange(n) if n <= k else np.argpartition(-similarity, k - 1)[:k]
        top = top[np.argsort(-similarity[top], kind="stable")]
        return [Neighbour(self.ids[i], float(similarity[i])) for i in top]


def _unit(vector: np.ndarray) -> np.ndarray:
    v = np.asarray(vector, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


class TenantVectors:
    def __init__(self, dimensions: int) -> None:
        self._dims = dimensions
        self._blocks: dict[tuple[str, str], _Block] = {}
        self._context: dict[tuple[str, str], str] = {}  # (tenant, id) -> context
        self._counts: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._context)

    def count(self, tenant: str) -> int:
        return self._counts.get(tenant, 0)

    def add(self, tenant: str, entry_id: str, context: str, vector: np.ndarray) -> None:
        if (tenant, entry_id) in self._context:
            return
        vector = _unit(vector)
        if vector.shape != (self._dims,):
            raise ValueError(f"vector of {vector.shape[0]} dimensions, index has {self._dims}")
        block = self._blocks.get((tenant, context))
        if block is None:
            block = self._blocks[(tenant, context)] = _Block(self._dims)
        block.add(entry_id, vector)
        self._context[(tenant, entry_id)] = context
        self._counts[tenant] = self._counts.get(tenant, 0) + 1

    def remove(self, tenant: str, entry_id: str) -> None:
        context = self._context.pop((tenant, entry_id), None)
        if context is None:
            return
        block = self._blocks[(tenant, context)]
        block.remove(entry_id)
        if not block.ids:
            del self._blocks[(tenant, context)]
        self._counts[tenant] -= 1
        if not self._counts[tenant]:
            del self._counts[tenant]

    def ids_of(self, tenant: str) -> set[str]:
        return {entry_id for t, entry_id in self._context if t == tenant}

    def drop(self, tenant: str) -> None:
        """Forgets every entry of `tenant`."""
        for entry_id in self.ids_of(tenant):
            self.remove(tenant, entry_id)

    def search(self, tenant: str, context: str, vector: np.ndarray, k: int = 8) -> list[Neighbour]:
        """The k entries of `tenant` under `context` nearest to `vector`, nearest first."""
        block = self._blocks.get((tenant, context))
        if block is None or k <= 0:
            return []
        return block.nearest(_unit(vector), k)
