"""What both searches derive from one allowed set, computed once per set rather than per search.

The searcher caches each caller's allowed chunk ids as a read-only array and hands the same array to
every search until the documents change (rag/search.py). A search index turns it into its own form
(BM25: row masks per segment; FAISS: a bitmap selector); this cache keeps that form keyed by the
array's identity, holding the array so the identity stays unique. Writable arrays are one search's
own and are not cached.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

import numpy as np

T = TypeVar("T")


class PerAllowedSet(Generic[T]):
    """`compute` is passed to each `get`, not kept: an index's bound method held here would make a
    reference cycle, and a replaced generation's memory-mapped files would stay mapped until the
    cycle collector ran."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[int, tuple[np.ndarray, T]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, allowed_ids: np.ndarray, compute: Callable[[np.ndarray], T]) -> T:
        if allowed_ids.flags.writeable:
            return compute(allowed_ids)
        key = id(allowed_ids)
        with self._lock:
            cached = self._entries.get(key)
            if cached is not None and cached[0] is allowed_ids:
                self._entries.move_to_end(key)
                return cached[1]
        value = compute(allowed_ids)
        with self._lock:
            self._entries[key] = (allowed_ids, value)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return value
