"""Choose the fusion parameters on a BEIR *train* split; report the choice once on the test split.

    python bench/tune_fusion.py ../shared/eval/scifact [--work-dir DIR] [--json]

Needs the folder ingested once by `rag eval beir FOLDER` (same --work-dir). Each query's dense and
BM25 rankings are computed once; the grid (convex alpha x depth, and RRF k x keyword weight x depth)
is then fused offline.
The test split is touched only after the choice is made, for the report.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

GRID_K = [5, 10, 20, 30, 60, 100]
GRID_KEYWORD_WEIGHT = [0.5, 0.75, 1.0, 1.25, 1.5, 2.0]
GRID_DEPTH = [50, 100, 200, 300, 500]
GRID_ALPHA = [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--work-dir", type=Path)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from sqlalchemy import select

    from indexes.snapshot import load_snapshot
    from rag.db.models import Chunk, Document
    from rag.db.session import make_engine, make_sessionmaker
    from rag.embedder import load_embedder
    from rag.evaluation import documents_of, load_beir, score
    from rag.retrieval import FusionParams, HybridRetriever, fuse
    from rag.settings import Settings

    base = Settings()
    work = args.work_dir or base.data_dir / "eval" / args.folder.resolve().name
    settings = base.model_copy(update={"data_dir": work, "database_url": None})
    factory = make_sessionmaker(make_engine(settings))
    with factory() as session:
        doc_of_chunk = {cid: Path(p).stem for cid, p in session.execute(select(Chunk.id, Document.path).join(Document))}
    if not doc_of_chunk:
        sys.exit(f"nothing ingested in {work}: run `rag eval beir {args.folder}` first")
    snapshot = load_snapshot(settings.index_dir)
    embedder = load_embedder(settings)
    retriever = HybridRetriever(embedder, snapshot.vector, snapshot.keyword)

    def rankings(split: str) -> tuple[dict, dict, dict]:
        beir = load_beir(args.folder, split)
        qids = list(beir.queries)
        vectors = embedder.embed([beir.queries[q] for q in qids])
        dense = {q: retriever.dense_ranking(v, max(GRID_DEPTH), None) for q, v in zip(qids, vectors, strict=True)}
        keyword = {q: retriever.keyword_ranking(beir.queries[q], max(GRID_DEPTH), None) for q in qids}
        return dense, keyword, beir.qrels

    def evaluate(params: FusionParams, dense: dict, keyword: dict, qrels: dict) -> dict:
        ranked = {
            q: documents_of(
                [h.chunk_id for h in fuse(dense[q][: params.depth], keyword[q][: params.depth], params, 300)],
                doc_of_chunk,
            )
            for q in dense
        }
        return score(ranked, qrels)

    train = rankings("train")
    results = []
    for k, w, depth in itertools.product(GRID_K, GRID_KEYWORD_WEIGHT, GRID_DEPTH):
        params = FusionParams(method="rrf", rrf_k=k, dense_weight=1.0, keyword_weight=w, depth=depth)
        results.append((evaluate(params, *train)["ndcg@10"], params))
    for alpha, depth in itertools.product(GRID_ALPHA, GRID_DEPTH):
        params = FusionParams(method="convex", alpha=alpha, depth=depth)
        results.append((evaluate(params, *train)["ndcg@10"], params))
    results.sort(key=lambda r: -r[0])
    best_train, best = results[0]
    default = FusionParams(method="rrf", rrf_k=60, depth=100)  # the plain RRF baseline
    test = rankings("test")
    report = {
        "chosen": {f: getattr(best, f) for f in best.__slots__},
        "train_ndcg@10_chosen": round(best_train, 4),
        "train_ndcg@10_rrf60": round(evaluate(default, *train)["ndcg@10"], 4),
        "test_chosen": evaluate(best, *test),
        "test_rrf60": evaluate(default, *test),
        "top5_train": [
            (round(s, 4), p.method, p.alpha if p.method == "convex" else (p.rrf_k, p.keyword_weight), p.depth)
            for s, p in results[:5]
        ],
        "grid": len(results),
        "threads": os.cpu_count(),
    }
    print(json.dumps(report, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
