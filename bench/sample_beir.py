"""A smaller BEIR folder for evaluations that must fit a shared CPU: some queries, every document
they judge, and random other documents as distractors.

    python bench/sample_beir.py ../shared/eval/scifact /tmp/scifact-s --docs 800 --queries test:300,train:150

Queries are drawn per split (`split:N`, all when N is larger), their judged documents are always kept,
and the corpus is topped up with documents drawn at random (seed 18) to `--docs`. Scores on a sample
are higher than on the whole corpus (fewer distractors); compare runs on the same sample only.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
from pathlib import Path


def sample(
    source: Path, target: Path, docs: int, per_split: dict[str, int], queries_in_corpus: bool, seed: int = 18
) -> tuple[int, int]:
    rng = random.Random(seed)
    (target / "qrels").mkdir(parents=True, exist_ok=True)
    keep_queries: set[str] = set()
    keep_docs: set[str] = set()
    for split, n in per_split.items():
        with open(source / "qrels" / f"{split}.tsv", encoding="utf-8") as f:
            rows = [r for r in csv.reader(f, delimiter="\t") if r and r[0] != "query-id"]
        qids = sorted({r[0] for r in rows})
        chosen = set(rng.sample(qids, min(n, len(qids))))
        kept = [r for r in rows if r[0] in chosen]
        keep_queries |= chosen
        keep_docs |= {r[1] for r in kept if int(r[2]) > 0}
        if queries_in_corpus:  # ArguAna: a query is a corpus document too (dropped from its own results)
            keep_docs |= chosen
        with open(target / "qrels" / f"{split}.tsv", "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f, delimiter="\t", lineterminator="\n")
            writer.writerow(["query-id", "corpus-id", "score"])
            writer.writerows(kept)
    with open(source / "corpus.jsonl", encoding="utf-8") as f:
        lines = f.readlines()
    ids = [json.loads(line)["_id"] for line in lines]
    keep_docs &= set(ids)
    others = [i for i in ids if i not in keep_docs]
    keep_docs |= set(rng.sample(others, max(0, min(len(others), docs - len(keep_docs)))))
    with open(target / "corpus.jsonl", "w", encoding="utf-8") as f:
        f.writelines(line for line, i in zip(lines, ids, strict=True) if i in keep_docs)
    with open(source / "queries.jsonl", encoding="utf-8") as src, open(target / "queries.jsonl", "w") as dst:
        dst.writelines(line for line in src if json.loads(line)["_id"] in keep_queries)
    return len(keep_docs), len(keep_queries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--docs", type=int, required=True)
    parser.add_argument("--queries", required=True, help="split:N,split:N")
    parser.add_argument("--queries-in-corpus", action="store_true", help="keep each query's own document (ArguAna)")
    args = parser.parse_args()
    per_split = {s: int(n) for s, n in (part.split(":") for part in args.queries.split(","))}
    docs, queries = sample(args.source, args.target, args.docs, per_split, args.queries_in_corpus)
    print(f"{args.target}: {docs} documents, {queries} queries")


if __name__ == "__main__":
    main()
