"""Hard negatives mined with BM25 over the training chunks: passages that share the query's words
but come from another document. The top few are skipped: on a corpus of related documents they are
the likeliest to be unlabelled positives (false negatives)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import bm25s
import numpy as np

from indexes.keyword import tokenize


def mine(
    queries: Sequence[str],
    query_docs: Sequence[str],
    passages: Sequence[str],
    passage_docs: Sequence[str],
    *,
    skip: int,
    depth: int,
    salt: str,
) -> list[int | None]:
    """For each query, the index of one passage from another document among BM25's hits ranked
    skip..depth (other documents only), chosen by a hash; None when BM25 finds none."""
    if not queries:
        return []
    retriever = bm25s.BM25(k1=1.5, b=0.75)
    retriever.index([t or ["_"] for t in tokenize(passages)], show_progress=False)
    k = min(len(passages), depth + 8)
    out: list[int | None] = []
    for start in range(0, len(queries), 512):
        batch = [t or ["_"] for t in tokenize(queries[start : start + 512])]
        ids, _ = retriever.retrieve(batch, k=k, show_progress=False)
        for row, qi in zip(np.asarray(ids), range(start, start + len(batch)), strict=True):
            others = [int(i) for i in row if passage_docs[int(i)] != query_docs[qi]][:depth]
            pool = others[skip:] or others
            if not pool:
                out.append(None)
                continue
            h = int.from_bytes(hashlib.sha256(f"{salt}\x00{qi}".encode()).digest()[:8], "big")
            out.append(pool[h % len(pool)])
    return out
