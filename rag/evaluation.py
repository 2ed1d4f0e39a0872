"""Retrieval evaluation on BEIR-format folders (corpus.jsonl, queries.jsonl, qrels/<split>.tsv).

Documents go through the real ingestion path (files -> parse -> chunk -> embed -> indexes); a
document's score is its best chunk's rank, as a user would see it in search results.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class BeirSet:
    corpus: Path
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]  # query id -> {doc id: relevance}


def load_beir(folder: Path, split: str) -> BeirSet:
    qrels_path = folder / "qrels" / f"{split}.tsv"
    if not (folder / "corpus.jsonl").is_file() or not qrels_path.is_file():
        raise FileNotFoundError(f"not a BEIR folder with split '{split}': need corpus.jsonl and qrels/{split}.tsv")
    qrels: dict[str, dict[str, int]] = {}
    with open(qrels_path, encoding="utf-8") as f:
        for row in csv.reader(f, delimiter="\t"):
            if not row or row[0] == "query-id":
                continue
            if int(row[2]) > 0:
                qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    queries = {}
    with open(folder / "queries.jsonl", encoding="utf-8") as f:
        for line in f:
            q = json.loads(line)
            if q["_id"] in qrels:
                queries[q["_id"]] = q["text"]
    return BeirSet(folder / "corpus.jsonl", queries, qrels)


def write_corpus(corpus: Path, folder: Path, limit: int | None = None) -> int:
    """One text file per document, `title + text` (how the published figures index them).
    Unchanged files are not rewritten, so re-ingesting an evaluated folder redoes nothing."""
    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(corpus, encoding="utf-8") as f:
        for line in f:
            if limit is not None and n >= limit:
                break
            doc = json.loads(line)
            path = folder / f"{doc['_id']}.txt"
            content = f"{doc['title']}\n\n{doc['text']}\n"
            if not path.exists() or path.read_text(encoding="utf-8") != content:
                path.write_text(content, encoding="utf-8")
            n += 1
    return n


def ndcg_at(ranked: list[str], relevant: dict[str, int], k: int) -> float:
    dcg = sum(relevant.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranked: list[str], relevant: dict[str, int], k: int) -> float:
    return len(set(ranked[:k]) & set(relevant)) / len(relevant) if relevant else 0.0


def mrr_at(ranked: list[str], relevant: dict[str, int], k: int) -> float:
    return next((1.0 / (i + 1) for i, d in enumerate(ranked[:k]) if d in relevant), 0.0)


def documents_of(
    chunk_ranking: list[int], doc_of_chunk: dict[int, str], limit: int = 100, exclude: str | None = None
) -> list[str]:
    """Documents in the order of their best chunk; `exclude` (the query's own id) is never returned."""
    seen: dict[str, None] = {}
    for chunk_id in chunk_ranking:
        doc = doc_of_chunk.get(chunk_id)
        if doc is not None and doc not in seen and doc != exclude:
            seen[doc] = None
            if len(seen) == limit:
                break
    return list(seen)


def score(rankings: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    qids = [q for q in qrels if q in rankings]
    return {
        "ndcg@10": float(np.mean([ndcg_at(rankings[q], qrels[q], 10) for q in qids])),
        "recall@100": float(np.mean([recall_at(rankings[q], qrels[q], 100) for q in qids])),
        "mrr@10": float(np.mean([mrr_at(rankings[q], qrels[q], 10) for q in qids])),
        "queries": len(qids),
    }


def evaluate(
    beir: BeirSet,
    rank: Callable[[str], list[int]],
    doc_of_chunk: dict[int, str],
    ignore_identical_ids: bool = False,
) -> dict[str, float]:
    """`ignore_identical_ids`: a hit whose id is the query's own is dropped, as BEIR, MTEB and pyserini
    do for ArguAna, whose queries are corpus documents too. Not by default: in MED, query 5's relevant
    document is document 5."""
    rankings = {
        qid: documents_of(rank(text), doc_of_chunk, exclude=qid if ignore_identical_ids else None)
        for qid, text in beir.queries.items()
    }
    return score(rankings, beir.qrels)
