"""FAISS vector index keyed by chunk id: exact while small, IVF above a size threshold.

Exact search (`IndexIDMap2(IndexFlatIP)`) costs time linear in the number of chunks (one query:
6 ms at 100k on one core). Above `RAG_ANN_THRESHOLD` chunks the index is an inverted file
(`IndexIVFFlat`, trained on the stored embeddings): a query visits `nprobe` of `nlist` cells.
IVFFlat keeps the full float32 vectors, so every candidate's score is the exact inner product;
recall depends only on how many cells are visited. Deletions work in place (a hash-table direct
map), and the allowed-id filter of access control is applied inside the search in both kinds.
A filter that leaves few chunks is searched exactly over just those chunks' vectors.

A search that scans few vectors runs on the calling thread only (`SINGLE_THREAD_WORK`): waking
FAISS's OpenMP team costs more than it saves there, and right after the query encoder's ONNX
Runtime threads (still spinning on the other core) it costs 3-4 ms instead of 0.6 ms at 10k chunks (measured).
A server gets its parallelism from concurrent requests, each on its own thread.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import faiss
import numpy as np

from indexes.shared_sets import PerAllowedSet

Kind = Literal["exact", "ivf"]
EXACT_FILTER_LIMIT = 20_000  # allowed sets up to this size are searched exactly over their own vectors
# queries x vectors scanned up to which a search stays on the calling thread (measured on 2 cores, one
# query over 100k exact vectors, nothing else running: 1 thread 6.1 ms, 2 threads 13.5 ms)
SINGLE_THREAD_WORK = 250_000


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """OpenMP's thread count is per calling thread: one for this search, then put back."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def nlist_for(n: int) -> int:
    """Cells for n vectors: about 4 sqrt(n) (FAISS's guideline), at least 39 training points each."""
    return int(max(1, min(65_536, 4 * math.sqrt(max(n, 1)), n // 39)))


def _selector(ids: np.ndarray) -> tuple[faiss.IDSelector, np.ndarray | None]:
    """FAISS's membership test for an allowed set: a bitmap of one bit per id up to the largest (one
    bit read per candidate; an `IDSelectorBatch` hash set of 100k ids cost about 2 ms to build on every
    search), or that hash set where ids are so sparse that the bitmap would be large. Returns the
    selector and the array it reads, which must stay referenced while it is used. Computed once per
    shared allowed set (indexes/shared_sets.py)."""
    ids = ids[ids >= 0]
    if not len(ids) or int(ids.max()) // 8 > 4 * ids.nbytes + (1 << 20):
        return faiss.IDSelectorBatch(ids), None
    if np.any(ids[1:] < ids[:-1]):
        ids = np.sort(ids)
    byte = ids >> 3
    starts = np.flatnonzero(np.r_[True, byte[1:] != byte[:-1]])
    bits = np.zeros(int(byte[-1]) + 1, dtype=np.uint8)
    bits[byte[starts]] = np.bitwise_or.reduceat(np.left_shift(1, ids & 7).astype(np.uint8), starts)
    return faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits)), bits  # n counts bytes


class FaissVectorIndex:
    FILE = "vector.faiss"

    def __init__(self, dim: int, index: faiss.Index | None = None, *, nprobe: int = 64) -> None:
        self.dim = dim
        self._index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self.nprobe = nprobe
        self._ids: np.ndarray | None = None  # sorted ids of an IVF index, computed when first needed
        self._selectors: PerAllowedSet[tuple[faiss.IDSelector, np.ndarray | None]] = PerAllowedSet(16)

    @property
    def kind(self) -> Kind:
        return "ivf" if isinstance(self._index, faiss.IndexIVF) else "exact"

    @property
    def nlist(self) -> int:
        return int(self._index.nlist) if self.kind == "ivf" else 0

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def ids(self) -> np.ndarray:
        if self.kind == "exact":
            return faiss.vector_to_array(self._index.id_map).astype(np.int64)
        if self._ids is not None:
            return self._ids
        invlists = self._index.invlists
        parts = [
            faiss.rev_swig_ptr(invlists.get_ids(i), invlists.list_size(i)).copy()
            for i in range(self._index.nlist)
            if invlists.list_size(i)
        ]
        self._ids = np.sort(np.concatenate(parts)).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)
        return self._ids

    @classmethod
    def build_ivf(
        cls,
        dim: int,
        ids: np.ndarray,
        vectors: np.ndarray,
        *,
        nlist: int = 0,
        nprobe: int = 64,
        train_size: int = 256_000,
        seed: int = 0,
    ) -> FaissVectorIndex:
        """Train the cells on a sample of the stored embeddings, then add them all."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        nlist = nlist or nlist_for(len(ids))
        sample = vectors
        if len(vectors) > train_size:
            sample = vectors[np.random.default_rng(seed).choice(len(vectors), train_size, replace=False)]
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        index.cp.niter = 10  # FAISS's default of 25 costs 2.5x the time for no measurable recall here
        index.train(sample)
        index.set_direct_map_type(faiss.DirectMap.Hashtable)  # removals and reconstruction by id
        built = cls(dim, index, nprobe=nprobe)
        built.add(ids, vectors)
        return built

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape != (len(ids), self.dim):
            raise ValueError(f"expected {len(ids)}x{self.dim} vectors, got {vectors.shape}")
        self._index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))
        self._ids = None

    def remove(self, ids: np.ndarray) -> int:
        if len(ids) == 0:
            return 0
        self._ids = None
        return int(self._index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64)))

    def search(
        self, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids); with `allowed_ids`, filtering happens inside FAISS, before ranking."""
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        k = max(1, min(k, len(self))) if len(self) else 1
        allowed = None if allowed_ids is None else np.ascontiguousarray(allowed_ids, dtype=np.int64)
        if self.kind == "ivf" and allowed is not None and len(allowed) <= EXACT_FILTER_LIMIT:
            return self._search_subset(queries, k, allowed)
        if self.kind == "exact":
            params = faiss.SearchParameters()
            scanned = len(self)
        else:
            # a filter removes a share of every cell: visit proportionally more cells
            share = 1.0 if allowed is None else max(len(allowed) / max(len(self), 1), 1e-6)
            params = faiss.SearchParametersIVF(nprobe=min(self.nlist, math.ceil(self.nprobe / share)))
            scanned = math.ceil(len(self) * params.nprobe / max(self.nlist, 1))
        if allowed is not None:
            selector, _bits = self._selectors.get(allowed, _selector)  # both stay referenced until the search returns
            params.sel = selector
        with _one_thread() if len(queries) * scanned <= SINGLE_THREAD_WORK else contextlib.nullcontext():
            return self._index.search(queries, k, params=params)

    def _search_subset(self, queries: np.ndarray, k: int, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact search over a few allowed chunks' own vectors (reconstructed by id)."""
        present = np.intersect1d(ids, self.ids(), assume_unique=True)  # ids not yet published are skipped
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        found = np.full((len(queries), k), -1, dtype=np.int64)
        if not len(present):
            return scores, found
        vectors = self._index.reconstruct_batch(present)
        sims = queries @ vectors.T
        top = min(k, len(present))
        order = np.argsort(-sims, axis=1)[:, :top]
        scores[:, :top] = np.take_along_axis(sims, order, axis=1)
        found[:, :top] = present[order]
        return scores, found

    def save(self, folder: Path) -> None:
        # through a Python file: a write that fails late (disk full at the last buffered block) raises
        # OSError here, where FAISS's own writer only prints a warning when closing its FILE*
        with open(folder / self.FILE, "wb") as f:
            faiss.write_index(self._index, faiss.PyCallbackIOWriter(f.write))

    @classmethod
    def load(cls, folder: Path, *, nprobe: int = 64, mmap: bool = False) -> FaissVectorIndex:
        """`mmap`: map an IVF index's lists read-only instead of reading them (readers of a shared
        volume then share one copy in the page cache)."""
        flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mmap else 0
        index = faiss.read_index(str(folder / cls.FILE), flags)
        return cls(index.d, index, nprobe=nprobe)
