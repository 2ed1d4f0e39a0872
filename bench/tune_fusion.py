"""Choose the hybrid fusion on several collections at once; report it on each one's held-out queries.

    python bench/tune_fusion.py ../shared/eval/scifact=DIR ../shared/eval/med=DIR ... [--cache FILE]
        [--cache-by-tokens] [--rankings DIR] [--json]

Each FOLDER=WORK_DIR pair names a BEIR folder and the work dir where `rag eval beir FOLDER --work-dir
WORK_DIR` ingested it (FOLDER alone: DATA_DIR/eval/<name>). A collection with a train split is tuned on
train and reported on test; one with only a test split is cut in two halves by a hash of the query id
(tune on one, report on the other). Each query's dense and BM25 chunk rankings are computed once (query
vectors through the embedding cache of bench/embed_cache.py when --cache is given); the grid is then
fused offline. The setting chosen is the one with the best mean nDCG@10 over the collections' tuning
halves (each collection weighs the same), so no single collection decides it. The held-out halves are
scored only for the report: dense alone, BM25 alone, plain RRF (k=60, top-100 of each), main's
default before issue 18 (convex 0.5), the settings' default now and the chosen setting. A hit whose
id is the query's own is dropped where the queries are corpus documents (ArguAna; detected from the
texts). `--score LABEL:FOLDER=WORK_DIR` adds folders (main's chunker, a wrapped copy) scored on
their whole test split with the same rows, for a before/after table; for test-only collections that
split includes the tuning half. `--rankings DIR` keeps each collection's rankings (by work dir) so a
second run embeds and searches nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import pickle
import sys
from dataclasses import asdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

GRID_K = [10, 30, 60, 100]
GRID_KEYWORD_WEIGHT = [0.5, 0.75, 1.0, 1.5]
GRID_DEPTH = [50, 100, 300]
GRID_ALPHA = [0.3, 0.4, 0.5, 0.6, 0.65, 0.7, 0.8]
MAX_DEPTH = max(GRID_DEPTH)


def halves(qids: list[str]) -> tuple[list[str], list[str]]:
    """A fixed split of a test-only collection: by a hash of the id, so it never depends on file order."""
    ordered = sorted(qids, key=lambda q: hashlib.sha256(q.encode()).hexdigest())
    return ordered[0::2], ordered[1::2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sets", nargs="+", help="FOLDER or FOLDER=WORK_DIR")
    parser.add_argument(
        "--score",
        action="append",
        default=[],
        metavar="LABEL:FOLDER=WORK_DIR",
        help="also score this ingested folder on its whole test split (not used for tuning): e.g. main's chunker",
    )
    parser.add_argument("--cache", type=Path, help="embedding cache file of bench/embed_cache.py")
    parser.add_argument(
        "--cache-by-tokens", action="store_true", help="the cache is bench/token_cache.py's (keyed by token ids)"
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--rankings", type=Path, help="folder keeping each collection's dense and BM25 rankings between runs"
    )
    args = parser.parse_args()

    from sqlalchemy import select

    from indexes.snapshot import load_snapshot
    from rag.db.models import Chunk, Document
    from rag.db.session import make_engine, make_sessionmaker
    from rag.embedder import load_embedder
    from rag.evaluation import documents_of, load_beir, score
    from rag.retrieval import FusionParams, fuse
    from rag.service import fusion_params
    from rag.settings import Settings

    base = Settings()
    embedder = load_embedder(base)
    if args.cache:
        from embed_cache import CachingEmbedder
        from token_cache import TokenCachingEmbedder

        embedder = (TokenCachingEmbedder if args.cache_by_tokens else CachingEmbedder)(embedder, args.cache)

    def own_ids(folder: Path, queries: dict[str, str]) -> bool:
        """ArguAna's rule: queries that are corpus documents (same id, same text) never retrieve themselves.
        Detected, not assumed: in MED, query 5's relevant document is document 5."""
        texts = {}
        with open(folder / "corpus.jsonl", encoding="utf-8") as f:
            for line in f:
                doc = json.loads(line)
                if doc["_id"] in queries:
                    texts[doc["_id"]] = doc["text"]
        present = [q for q in queries if q in texts]  # a sample keeps only some of them
        return sum(texts[q] == queries[q] for q in present) > len(present) / 2

    def rankings(snapshot, queries: dict[str, str], qids: list[str]) -> tuple[dict, dict]:
        """Each query's dense and BM25 chunk rankings, MAX_DEPTH deep: computed once, fused offline."""
        vectors = embedder.embed([queries[q] for q in qids])
        scores, ids = snapshot.vector.search(vectors, MAX_DEPTH)
        dense = {
            q: [(int(i), float(s)) for i, s in zip(ids[n], scores[n], strict=True) if i >= 0]
            for n, q in enumerate(qids)
        }
        keyword = {}
        for q in qids:
            kscores, kids = snapshot.keyword.search(queries[q], MAX_DEPTH, None)
            keyword[q] = list(zip(kids.tolist(), kscores.tolist(), strict=True))
        return dense, keyword

    def load(folder: Path, work: str) -> dict:
        work_dir = Path(work) if work else base.data_dir / "eval" / folder.resolve().name
        settings = base.model_copy(update={"data_dir": work_dir, "database_url": None})
        factory = make_sessionmaker(make_engine(settings))
        with factory() as session:
            doc_of_chunk = {
                cid: Path(p).stem for cid, p in session.execute(select(Chunk.id, Document.path).join(Document))
            }
        if not doc_of_chunk:
            sys.exit(f"nothing ingested in {work_dir}: run `rag eval beir {folder} --work-dir {work_dir}` first")
        snapshot = load_snapshot(settings.index_dir)
        test = load_beir(folder, "test")
        if (folder / "qrels" / "train.tsv").is_file():
            train = load_beir(folder, "train")
            tune_ids, report_ids = list(train.queries), list(test.queries)
            queries, qrels = {**train.queries, **test.queries}, {**train.qrels, **test.qrels}
        else:
            tune_ids, report_ids = halves(list(test.queries))
            queries, qrels = test.queries, test.qrels
        qids = list(queries)
        key = hashlib.sha256(str(work_dir.resolve()).encode()).hexdigest()[:16]
        kept = args.rankings / f"{folder.resolve().name}-{key}.pkl" if args.rankings else None
        if kept and kept.is_file():
            with open(kept, "rb") as f:
                dense, keyword = pickle.load(f)
        else:
            dense, keyword = rankings(snapshot, queries, qids)
            if kept:
                kept.parent.mkdir(parents=True, exist_ok=True)
                with open(kept, "wb") as f:
                    pickle.dump((dense, keyword), f)
        return {
            "doc_of_chunk": doc_of_chunk,
            "dense": dense,
            "keyword": keyword,
            "qrels": qrels,
            "tune": tune_ids,
            "report": report_ids,
            "test": list(test.queries),
            "own_ids": own_ids(folder, queries),
            "chunks": len(doc_of_chunk),
        }

    collections = {}
    for spec in args.sets:
        folder, _, work = spec.partition("=")
        name = Path(folder).resolve().name
        collections[name] = c = load(Path(folder), work)
        print(
            f"{name}: {c['chunks']} chunks, {len(c['tune'])} tuning / {len(c['report'])} held-out queries, "
            f"own id dropped: {c['own_ids']}",
            file=sys.stderr,
        )
    scored = {}
    for spec in args.score:
        label, _, rest = spec.partition(":")
        folder, _, work = rest.partition("=")
        scored[f"{label}:{Path(folder).resolve().name}"] = load(Path(folder), work)

    def run(c: dict, qids: list[str], rank) -> dict:
        ranked = {q: documents_of(rank(q), c["doc_of_chunk"], exclude=q if c["own_ids"] else None) for q in qids}
        return score(ranked, {q: c["qrels"][q] for q in qids})

    def fused(c: dict, params: FusionParams):
        d = params.depth
        return lambda q: [h.chunk_id for h in fuse(c["dense"][q][:d], c["keyword"][q][:d], params, 300)]

    def single(c: dict, which: str):
        return lambda q: [i for i, _ in c[which][q]]

    grid = [
        FusionParams(method="rrf", rrf_k=k, keyword_weight=w, depth=d)
        for k, w, d in itertools.product(GRID_K, GRID_KEYWORD_WEIGHT, GRID_DEPTH)
    ]
    grid += [FusionParams(method="convex", alpha=a, depth=d) for a, d in itertools.product(GRID_ALPHA, GRID_DEPTH)]
    grid += [FusionParams(method="zscore", alpha=a, depth=d) for a, d in itertools.product(GRID_ALPHA, GRID_DEPTH)]
    grid += [FusionParams(method="adaptive", alpha=a, depth=d) for a, d in itertools.product(GRID_ALPHA, GRID_DEPTH)]
    grid += [FusionParams(method="tmm", alpha=a, depth=d) for a, d in itertools.product(GRID_ALPHA, GRID_DEPTH)]
    results = []
    for params in grid:
        per = {n: run(c, c["tune"], fused(c, params))["ndcg@10"] for n, c in collections.items()}
        results.append((sum(per.values()) / len(per), per, params))
    results.sort(key=lambda r: -r[0])
    _, chosen_tune, chosen = results[0]
    shipped = FusionParams(method="convex", alpha=0.5, depth=300)  # main's default before issue 18
    rrf60 = FusionParams(method="rrf", rrf_k=60, depth=100)
    default = fusion_params(base)  # what the settings ship now: what `rag eval beir` fuses with
    table = {}
    for n, c in collections.items():
        rows = {
            "dense": run(c, c["report"], single(c, "dense")),
            "bm25": run(c, c["report"], single(c, "keyword")),
            "rrf60": run(c, c["report"], fused(c, rrf60)),
            "convex0.5": run(c, c["report"], fused(c, shipped)),
            "default": run(c, c["report"], fused(c, default)),
            "chosen": run(c, c["report"], fused(c, params=chosen)),
        }
        table[n] = {
            k: {m: round(v, 4) for m, v in r.items() if m != "queries"} | {"queries": r["queries"]}
            for k, r in rows.items()
        }
        table[n]["chunks"] = c["chunks"]
    whole = {}
    for n, c in [*collections.items(), *scored.items()]:
        whole[n] = {"chunks": c["chunks"]} | {
            label: {m: round(v, 4) for m, v in run(c, c["test"], rank).items()}
            for label, rank in (
                ("dense", single(c, "dense")),
                ("bm25", single(c, "keyword")),
                ("rrf60", fused(c, rrf60)),
                ("convex0.5", fused(c, shipped)),
                ("default", fused(c, default)),
                ("chosen", fused(c, chosen)),
            )
        }
    out = {
        "chosen": asdict(chosen),
        "chosen_tune_ndcg@10": {n: round(v, 4) for n, v in chosen_tune.items()},
        "main_default": asdict(shipped),
        "settings_default": asdict(default),
        "held_out": table,
        "whole_test_split": whole,
        "top5_tune": [(round(s, 4), asdict(p)) for s, _, p in results[:5]],
        # for transparency only (the choice above never saw these): how the runners-up and each method's
        # best setting fare on the held-out queries
        "held_out_ndcg@10_of_runners_up": [
            (asdict(p), {n: round(run(c, c["report"], fused(c, p))["ndcg@10"], 4) for n, c in collections.items()})
            for p in [p for _, _, p in results[:5]]
            + [next(p for _, _, p in results if p.method == m) for m in ("convex", "zscore", "adaptive", "tmm", "rrf")]
        ],
        "grid": len(grid),
    }
    print(json.dumps(out, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
