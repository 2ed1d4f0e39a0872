"""Exact inner-product FAISS index keyed by chunk id, with allowed-id filtering inside the search."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np


class FaissVectorIndex:
    """IndexIDMap2 over a flat inner-product index: exact, supports removals by id."""

    FILE = "vector.faiss"

    def __init__(self, dim: int, index: faiss.Index | None = None) -> None:
        self.dim = dim
        self._index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dim))

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def ids(self) -> np.ndarray:
        return faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape != (len(ids), self.dim):
            raise ValueError(f"expected {len(ids)}x{self.dim} vectors, got {vectors.shape}")
        self._index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> int:
        if len(ids) == 0:
            return 0
        return int(self._index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64)))

    def search(
        self, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids); with `allowed_ids`, filtering happens inside FAISS, before ranking."""
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        params = None
        if allowed_ids is not None:
            selector = faiss.IDSelectorBatch(np.ascontiguousarray(allowed_ids, dtype=np.int64))
            params = faiss.SearchParameters(sel=selector)
        k = max(1, min(k, len(self))) if len(self) else 1
        scores, ids = self._index.search(queries, k, params=params)
        return scores, ids

    def save(self, folder: Path) -> None:
        faiss.write_index(self._index, str(folder / self.FILE))

    @classmethod
    def load(cls, folder: Path) -> "FaissVectorIndex":
        index = faiss.read_index(str(folder / cls.FILE))
        return cls(index.d, index)
