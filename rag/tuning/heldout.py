"""Score an embedder on the held-out documents with self-supervised queries (no labels needed).

Each held-out chunk yields one query built exactly as in training (a sentence or its heading); the
chunk itself is searched without that sentence, so the query never finds its own words verbatim.
The query's one relevant document is the one it came from; everything is searched over all chunks.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rag.evaluation import documents_of, ndcg_at, recall_at
from rag.tuning.pairs import make_pair
from rag.tuning.split import is_held_out
from rag.tuning.trainer import TrainingChunk

MAX_QUERIES = 1000


def heldout_eval(
    model_dir: Path,
    chunks: Sequence[TrainingChunk],
    *,
    fraction: float = 0.1,
    seed: int = 15,
    max_queries: int = MAX_QUERIES,
) -> dict[str, float]:
    """nDCG@10 and Recall@10 of the embedder in `model_dir` on the held-out documents' queries."""
    from rag.embedder import SentenceTransformerEmbedder

    texts: list[str] = []
    doc_of_chunk: dict[int, str] = {}
    queries: list[tuple[str, str]] = []  # (query, document key)
    for n, c in enumerate(chunks):
        doc_of_chunk[n] = c.document_key
        pair = make_pair(c.document_key, c.chunk_id, c.text, seed) if is_held_out(c.document_key, fraction) else None
        if pair is None:
            texts.append(c.text)
        else:
            texts.append(pair.positive)
            queries.append((pair.query, c.document_key))
    queries = queries[:max_queries]
    if not queries:
        return {"ndcg@10": 0.0, "recall@10": 0.0, "queries": 0}
    embedder = SentenceTransformerEmbedder(str(model_dir))
    corpus = embedder.embed(texts)
    qv = embedder.embed([q for q, _ in queries])
    ndcg, recall = [], []
    for start in range(0, len(queries), 256):
        scores = qv[start : start + 256] @ corpus.T
        depth = min(100, scores.shape[1])
        top = np.argpartition(-scores, depth - 1, axis=1)[:, :depth]
        for row, (_, key) in zip(range(scores.shape[0]), queries[start : start + 256], strict=True):
            order = top[row][np.argsort(-scores[row, top[row]], kind="stable")]
            ranked = documents_of([int(i) for i in order], doc_of_chunk, limit=10)
            ndcg.append(ndcg_at(ranked, {key: 1}, 10))
            recall.append(recall_at(ranked, {key: 1}, 10))
    return {"ndcg@10": float(np.mean(ndcg)), "recall@10": float(np.mean(recall)), "queries": len(queries)}
