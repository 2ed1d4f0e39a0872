"""BM25 keyword index (bm25s, Snowball-stemmed English) keyed by chunk id, with allowed-id masks."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Sequence

import bm25s
import numpy as np
import Stemmer

_STEMMER = Stemmer.Stemmer("english")
logging.getLogger("bm25s").setLevel(logging.WARNING)


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    return bm25s.tokenize(list(texts), stopwords="en", stemmer=_STEMMER, return_ids=False, show_progress=False)


class BM25KeywordIndex:
    """Rebuilt whole for each generation: bm25s has no removals, and rebuilding is cheap next to embedding."""

    FOLDER = "keyword"

    def __init__(self, ids: np.ndarray, retriever: bm25s.BM25 | None) -> None:
        self._ids = np.asarray(ids, dtype=np.int64)
        self._retriever = retriever
        # ids come sorted from the database; the mask is then built with a vectorised binary search
        self._sorted = bool(np.all(self._ids[1:] > self._ids[:-1])) if len(self._ids) > 1 else True
        self._row_of = None if self._sorted else {int(chunk_id): row for row, chunk_id in enumerate(self._ids)}

    @classmethod
    def build(cls, ids: Sequence[int], texts: Sequence[str]) -> "BM25KeywordIndex":
        if len(ids) == 0:
            return cls(np.zeros(0, dtype=np.int64), None)
        retriever = bm25s.BM25()
        retriever.index(tokenize(texts), show_progress=False)
        return cls(np.asarray(ids, dtype=np.int64), retriever)

    def __len__(self) -> int:
        return len(self._ids)

    def ids(self) -> np.ndarray:
        return self._ids.copy()

    def search(self, query: str, k: int, allowed_ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids); the allowed-id mask is applied before ranking."""
        if self._retriever is None or not len(self._ids):
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
        mask = None
        if allowed_ids is not None:
            rows = self._rows(np.asarray(allowed_ids, dtype=np.int64))
            if not len(rows):
                return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
            mask = np.zeros(len(self._ids), dtype=np.float32)
            mask[rows] = 1.0
        tokens = tokenize([query])
        if not tokens or not tokens[0]:
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
        k = min(k, len(self._ids))
        rows, scores = self._retriever.retrieve(tokens, k=k, weight_mask=mask, show_progress=False, n_threads=1)
        rows, scores = rows[0], scores[0]
        keep = scores > 0
        return scores[keep].astype(np.float32), self._ids[rows[keep]]

    def _rows(self, ids: np.ndarray) -> np.ndarray:
        """Rows of the given chunk ids (ids this index does not hold are ignored)."""
        if not self._sorted:
            return np.asarray([self._row_of[i] for i in ids.tolist() if i in self._row_of], dtype=np.int64)
        pos = np.searchsorted(self._ids, ids)
        inside = pos < len(self._ids)
        pos, ids = pos[inside], ids[inside]
        return pos[self._ids[pos] == ids]

    def save(self, folder: Path) -> None:
        target = folder / self.FOLDER
        target.mkdir()
        np.save(target / "ids.npy", self._ids)
        if self._retriever is not None:
            self._retriever.save(str(target / "bm25"))
        (target / "meta.json").write_text(json.dumps({"count": len(self._ids), "stemmer": "english"}))

    @classmethod
    def load(cls, folder: Path) -> "BM25KeywordIndex":
        target = folder / cls.FOLDER
        ids = np.load(target / "ids.npy")
        retriever = bm25s.BM25.load(str(target / "bm25"), mmap=True) if len(ids) else None
        return cls(ids, retriever)
