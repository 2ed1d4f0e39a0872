"""Keyword search under an access filter: the caller's own BM25 statistics against a baseline.

    python bench/keyword_acl.py [--n 1000000] [--queries 200] [--baseline REV] [--json]

Builds the segmented keyword index over N synthetic chunk texts (windows of SciFact's abstracts,
../shared/eval/scifact, as bench/scale.py does), saves it once, then loads the same files with this
tree's `indexes/keyword.py` and with the one of git revision REV (default HEAD~1, a baseline that
scores with the whole index's statistics), and times, interleaved per query, 200 real claims:
unfiltered, with a cached 30% access set (the searcher's shared sets), and with a fresh 30% set.
Checks that filtered scores equal bm25s built over the allowed chunks alone. Not a test: compare
numbers only within one run.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import REPO, SCIFACT, pct
from scale import claim_texts, synthetic_texts


def baseline_module(rev: str):
    source = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{rev}:indexes/keyword.py"], capture_output=True, text=True, check=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "keyword_baseline.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("keyword_baseline", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--baseline", default="HEAD~1")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    say = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    import bm25s

    from indexes.keyword import BM25KeywordIndex, tokenize

    abstracts = [
        f"{d['title']} {d['text']}" for d in map(json.loads, (SCIFACT / "corpus.jsonl").read_text().splitlines())
    ]
    texts = synthetic_texts(abstracts, args.n)
    ids = np.arange(args.n, dtype=np.int64) + 1
    claims = claim_texts(args.queries)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        BM25KeywordIndex.build(ids, texts).save(Path(tmp))
        say(f"{args.n:,} chunk texts, index built in {time.perf_counter() - t:.1f} s; {len(claims)} claims")
        ours = BM25KeywordIndex.load(Path(tmp))
        base = baseline_module(args.baseline).BM25KeywordIndex.load(Path(tmp))
        rng = np.random.default_rng(3)
        allowed = np.sort(rng.choice(ids, int(0.3 * args.n), replace=False))
        shared = allowed.copy()
        shared.setflags(write=False)
        cases = {
            "unfiltered": lambda index, q: index.search(q, 10),
            "acl30_cached": lambda index, q: index.search(q, 10, shared),
            "acl30_fresh": lambda index, q: index.search(q, 10, allowed.copy()),
        }
        for index in (ours, base):  # warm: masks of the shared set built once, pages mapped
            for claim in claims[:5]:
                for search in cases.values():
                    search(index, claim)
        times = {(who, case): [] for who in ("ours", "baseline") for case in cases}
        for claim in claims:
            for case, search in cases.items():
                for who, index in (("ours", ours), ("baseline", base)):
                    t = time.perf_counter()
                    search(index, claim)
                    times[(who, case)].append((time.perf_counter() - t) * 1000)
        rows = {}
        for case in cases:
            row = {}
            for who in ("ours", "baseline"):
                values = times[(who, case)]
                row[who] = {"p50_ms": round(statistics.median(values), 2), "p95_ms": round(pct(values, 0.95), 2)}
            row["p50_ratio"] = round(row["ours"]["p50_ms"] / row["baseline"]["p50_ms"], 3)
            rows[case] = row
            say(
                f"  {case:13}: ours p50 {row['ours']['p50_ms']:6.2f} ms (p95 {row['ours']['p95_ms']:6.2f}) | "
                f"baseline p50 {row['baseline']['p50_ms']:6.2f} ms (p95 {row['baseline']['p95_ms']:6.2f}) | "
                f"ratio {row['p50_ratio']:.3f}"
            )
        # correctness: the filtered scores are bm25s's over the allowed chunks alone
        oracle = bm25s.BM25()
        oracle.index(tokenize([texts[i - 1] for i in allowed]), show_progress=False)
        same = 0
        for claim in claims:
            mine = ours.search(claim, 10, shared)[0]
            _, theirs = oracle.retrieve(tokenize([claim]), k=10, show_progress=False, n_threads=1)
            theirs = theirs[0][theirs[0] > 0]
            same += len(mine) == len(theirs) and bool(np.allclose(mine, theirs, rtol=1e-4))
        say(f"  filtered top-10 scores equal bm25s built over the allowed chunks alone: {same}/{len(claims)}")
    if args.json:
        print(json.dumps({"n": args.n, "queries": len(claims), "search": rows, "same_as_subset_bm25s": same}))


if __name__ == "__main__":
    main()
