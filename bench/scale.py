"""Scale benchmark: exact vs IVF vector search at N chunks (default 1M), one run.

    python bench/scale.py [--n 1000000] [--queries 200] [--nprobe 8,16,32,64] [--json]

Vectors: synthetic, drawn around real all-MiniLM-L6-v2 embeddings of SciFact's 5,183 abstracts
(../shared/eval/scifact; embedded once with the packaged model and cached under
~/.cache/private-rag/bench), so their neighbourhood structure is that of real documents; queries
are SciFact's real test claims, embedded. Measures, in one run:
  - build time and file size of the exact index (IndexIDMap2(Flat)) and of the IVF index the
    service switches to above RAG_ANN_THRESHOLD (same code: indexes/vector.py);
  - search p50/p95 of both, recall@10 of IVF against exact, per nprobe (the speedup is against the
    exact search of the same run);
  - deletes per second (batches of 100 ids) for both;
  - the keyword index over N synthetic chunk texts (windows of the same abstracts): build time and
    bytes of the segmented index (indexes/keyword.py) against bm25s built whole (what every
    publish used to do), an incremental publish (+1,000 / -1,000 chunks) against that full build,
    the worst-case merge of every segment, and search p50/p95 of both, unfiltered and with an ACL
    mask of 30% of the chunks (`--skip-keyword` leaves it out);
  - RSS of a fresh process that loads the embedder and maps the IVF and keyword indexes the way an
    API process does, against the sum of its parts (model RSS + index file bytes).
Not a test: compare numbers only within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import REPO, SCIFACT, pct

CACHE = Path.home() / ".cache" / "private-rag" / "bench"


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def seeds_and_queries() -> tuple[np.ndarray, np.ndarray]:
    """Real MiniLM vectors of the abstracts and of the test claims (cached after the first run)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    docs_file, queries_file = CACHE / "scifact-docs-minilm.npy", CACHE / "scifact-test-claims-minilm.npy"
    if not docs_file.exists() or not queries_file.exists():
        from rag.embedder import load_embedder
        from rag.settings import Settings

        embedder = load_embedder(Settings(_env_file=None))
        docs = [json.loads(line) for line in (SCIFACT / "corpus.jsonl").read_text().splitlines()]
        claims = claim_texts(10**9)
        print(f"embedding {len(docs)} abstracts and {len(claims)} claims once (cached in {CACHE})", file=sys.stderr)
        np.save(docs_file, embedder.embed([f"{d['title']} {d['text']}" for d in docs]))
        np.save(queries_file, embedder.embed(claims))
    return np.load(docs_file), np.load(queries_file)


def claim_texts(limit: int) -> list[str]:
    test_ids = {line.split("\t")[0] for line in (SCIFACT / "qrels" / "test.tsv").read_text().splitlines()[1:]}
    return [
        q["text"] for q in map(json.loads, (SCIFACT / "queries.jsonl").read_text().splitlines()) if q["_id"] in test_ids
    ][:limit]


def synthetic(seeds: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Chunks around real documents: a document's vector, pulled part-way towards a second one
    (neighbouring topics), plus noise; cosine to the nearest real vector ~0.75-0.95."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, seeds.shape[1]), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        a, b = rng.integers(0, len(seeds), m), rng.integers(0, len(seeds), m)
        mix = rng.uniform(0, 0.35, (m, 1)).astype(np.float32)
        rows = (1 - mix) * seeds[a] + mix * seeds[b] + rng.normal(0, 0.025, (m, seeds.shape[1])).astype(np.float32)
        out[start : start + m] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return out


def synthetic_texts(docs: list[str], n: int, seed: int = 2) -> list[str]:
    """Chunk-sized windows (~120 words) of one abstract followed by a few words of a second one."""
    rng = np.random.default_rng(seed)
    words = [d.split() for d in docs]
    out = []
    for a, b, start, extra in zip(
        rng.integers(0, len(words), n),
        rng.integers(0, len(words), n),
        rng.integers(0, 200, n),
        rng.integers(0, 40, n),
        strict=True,
    ):
        first, second = words[a], words[b]
        start = int(start) % max(1, len(first) - 120)
        out.append(" ".join(first[start : start + 120] + second[:extra]))
    return out


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def keyword_bench(n: int, claims: list[str], tmp: Path, say) -> dict:
    """Segmented BM25 vs bm25s built whole, at n chunks; leaves the segmented index in tmp/kw."""
    import bm25s

    from indexes.keyword import BM25KeywordIndex, Segment, tokenize

    abstracts = [
        f"{d['title']} {d['text']}" for d in map(json.loads, (SCIFACT / "corpus.jsonl").read_text().splitlines())
    ]
    texts = synthetic_texts(abstracts, n)
    ids = np.arange(n, dtype=np.int64) + 1
    t = time.perf_counter()
    index = BM25KeywordIndex.build(ids, texts)
    (tmp / "kw").mkdir()
    index.save(tmp / "kw")
    build_s = time.perf_counter() - t
    kw_bytes = folder_bytes(tmp / "kw" / "keyword")

    t = time.perf_counter()
    whole = bm25s.BM25()
    whole.index(tokenize(texts), show_progress=False)
    whole.save(str(tmp / "bm25s"))
    whole_build_s = time.perf_counter() - t
    whole_bytes = folder_bytes(tmp / "bm25s")
    del whole
    whole = bm25s.BM25.load(str(tmp / "bm25s"), mmap=True)
    say(
        f"keyword: {n:,} chunk texts; segmented build {build_s:.1f} s ({kw_bytes / 2**20:,.0f} MiB) vs bm25s whole "
        f"{whole_build_s:.1f} s ({whole_bytes / 2**20:,.0f} MiB)"
    )

    rng = np.random.default_rng(3)
    new_texts = synthetic_texts(abstracts, 1000, seed=4)
    loaded = BM25KeywordIndex.load(tmp / "kw")
    t = time.perf_counter()
    updated = loaded.updated(
        np.arange(n + 1, n + 1001, dtype=np.int64), new_texts, rng.choice(ids, 1000, replace=False)
    )
    (tmp / "kw2").mkdir()
    updated.save(tmp / "kw2")
    incremental_s = time.perf_counter() - t
    t = time.perf_counter()
    Segment.merged("seg-merged", updated.segments)
    merge_s = time.perf_counter() - t
    say(
        f"  publish +1,000/-1,000: {incremental_s:.2f} s vs full rebuild {whole_build_s:.1f} s "
        f"({whole_build_s / incremental_s:,.0f}x); merging all {len(updated.segments)} segments: {merge_s:.1f} s"
    )

    allowed = np.sort(rng.choice(ids, int(0.3 * n), replace=False))
    shared = allowed.copy()
    shared.setflags(write=False)  # as the searcher hands over its cached sets: row masks built once
    mask = np.zeros(n, dtype=np.float32)
    mask[allowed - 1] = 1.0
    rows = {}
    for name, search in (
        ("segmented", lambda q: loaded.search(q, 10)),
        ("bm25s", lambda q: whole.retrieve(tokenize([q]), k=10, show_progress=False, n_threads=1)),
        ("segmented_acl30", lambda q: loaded.search(q, 10, shared)),
        ("segmented_acl30_uncached", lambda q: loaded.search(q, 10, allowed)),
        (
            "bm25s_acl30",
            lambda q: whole.retrieve(tokenize([q]), k=10, weight_mask=mask, show_progress=False, n_threads=1),
        ),
    ):
        times = []
        for claim in claims:
            t = time.perf_counter()
            search(claim)
            times.append((time.perf_counter() - t) * 1000)
        rows[name] = {"p50_ms": round(statistics.median(times), 2), "p95_ms": round(pct(times, 0.95), 2)}
    same = 0  # same top-10 scores (ids may differ only among equal scores)
    for claim in claims:
        ours = loaded.search(claim, 10, shared)[0]
        _, theirs = whole.retrieve(tokenize([claim]), k=10, weight_mask=mask, show_progress=False, n_threads=1)
        theirs = theirs[0][theirs[0] > 0]
        same += len(ours) == len(theirs) and bool(np.allclose(ours, theirs, rtol=1e-4))
    for name, row in rows.items():
        say(f"  search {name:24}: p50 {row['p50_ms']:7.2f} ms, p95 {row['p95_ms']:7.2f} ms")
    say(f"  same top-10 scores as bm25s under the ACL mask: {same}/{len(claims)} claims")
    return {
        "build_s": round(build_s, 1),
        "bytes": kw_bytes,
        "bm25s_build_s": round(whole_build_s, 1),
        "bm25s_bytes": whole_bytes,
        "publish_1000_s": round(incremental_s, 2),
        "publish_speedup": round(whole_build_s / incremental_s, 1),
        "merge_all_s": round(merge_s, 1),
        "search": rows,
        "same_top10_acl": same,
        "queries": len(claims),
    }


def timed_search(index, queries: np.ndarray, k: int = 10) -> tuple[list[float], np.ndarray]:
    times, found = [], []
    for q in queries:
        t = time.perf_counter()
        _, ids = index.search(q.reshape(1, -1), k)
        times.append((time.perf_counter() - t) * 1000)
        found.append(ids[0])
    return times, np.array(found)


def deletes_per_second(index, ids: np.ndarray, total: int = 2000, batch: int = 100) -> float:
    chosen = np.random.default_rng(1).choice(ids, total, replace=False)
    t = time.perf_counter()
    for start in range(0, total, batch):
        index.remove(chosen[start : start + batch])
    return total / (time.perf_counter() - t)


API_PROCESS = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) / 1024
from rag.embedder import load_embedder
from rag.settings import Settings
from indexes.vector import FaissVectorIndex
from pathlib import Path
base = rss()
embedder = load_embedder(Settings(_env_file=None))
embedder.embed(['warm up'])
model = rss()
index = FaissVectorIndex.load(Path(sys.argv[2]), nprobe=int(sys.argv[3]), mmap=True)
keyword = None
if sys.argv[4] != '-':
    from indexes.keyword import BM25KeywordIndex
    keyword = BM25KeywordIndex.load(Path(sys.argv[4]))
for text in ['effects of vitamin D on bone density', 'gene expression in tumour cells'] * 25:
    index.search(embedder.embed([text]), 10)
    if keyword is not None:
        keyword.search(text, 10)
print(json.dumps({'base_mib': base, 'model_mib': model, 'api_mib': rss()}))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--nprobe", default="16,32,64,128")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--skip-keyword", action="store_true")
    args = parser.parse_args()
    import faiss

    from indexes.vector import FaissVectorIndex

    say = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    seeds, queries = seeds_and_queries()
    queries = queries[: args.queries]
    vectors = synthetic(seeds, args.n)
    ids = np.arange(args.n, dtype=np.int64) + 1
    say(
        f"{args.n:,} synthetic chunks around {len(seeds):,} real abstracts; {len(queries)} real claims; "
        f"faiss {faiss.__version__}, {os.cpu_count()} cores"
    )

    t = time.perf_counter()
    exact = FaissVectorIndex(vectors.shape[1])
    exact.add(ids, vectors)
    exact_build = time.perf_counter() - t
    t = time.perf_counter()
    ivf = FaissVectorIndex.build_ivf(vectors.shape[1], ids, vectors)
    ivf_build = time.perf_counter() - t
    del vectors
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "exact").mkdir()
        (Path(tmp) / "ivf").mkdir()
        exact.save(Path(tmp) / "exact")
        ivf.save(Path(tmp) / "ivf")
        exact_bytes = (Path(tmp) / "exact" / FaissVectorIndex.FILE).stat().st_size
        ivf_bytes = (Path(tmp) / "ivf" / FaissVectorIndex.FILE).stat().st_size

        exact_times, truth = timed_search(exact, queries)
        exact_p50 = statistics.median(exact_times)
        say(
            f"exact: build {exact_build:.1f} s, {exact_bytes / 2**20:,.0f} MiB, search p50 {exact_p50:.1f} ms, "
            f"p95 {pct(exact_times, 0.95):.1f} ms"
        )
        say(f"ivf:   build {ivf_build:.1f} s (nlist {ivf.nlist}), {ivf_bytes / 2**20:,.0f} MiB")
        rows = []
        for nprobe in [int(x) for x in args.nprobe.split(",")]:
            ivf.nprobe = nprobe
            times, found = timed_search(ivf, queries)
            recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(truth, found, strict=True)]))
            p50 = statistics.median(times)
            rows.append(
                {
                    "nprobe": nprobe,
                    "p50_ms": round(p50, 3),
                    "p95_ms": round(pct(times, 0.95), 3),
                    "recall@10": round(recall, 4),
                    "speedup": round(exact_p50 / p50, 1),
                }
            )
            say(
                f"  nprobe {nprobe:>3}: p50 {p50:6.2f} ms, p95 {pct(times, 0.95):6.2f} ms, recall@10 {recall:.4f}, "
                f"speedup {exact_p50 / p50:5.1f}x"
            )
        good = [r for r in rows if r["recall@10"] >= 0.98]
        best = max(good, key=lambda r: r["speedup"]) if good else max(rows, key=lambda r: r["recall@10"])

        kw = None if args.skip_keyword else keyword_bench(args.n, claim_texts(args.queries), Path(tmp), say)
        kw_folder = "-" if kw is None else str(Path(tmp) / "kw")
        api = json.loads(
            subprocess.run(
                [sys.executable, "-c", API_PROCESS, str(REPO), str(Path(tmp) / "ivf"), str(best["nprobe"]), kw_folder],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
    ivf_deletes = deletes_per_second(ivf, ids)
    exact_deletes = deletes_per_second(exact, ids)
    kw_mib = 0 if kw is None else kw["bytes"] / 2**20
    parts = api["model_mib"] + ivf_bytes / 2**20 + kw_mib
    say(f"deletes: ivf {ivf_deletes:,.0f}/s vs exact {exact_deletes:,.0f}/s")
    say(
        f"API process (embedder + mapped IVF and keyword indexes, 50 hybrid searches): RSS {api['api_mib']:,.0f} MiB "
        f"vs model {api['model_mib']:,.0f} MiB + vector file {ivf_bytes / 2**20:,.0f} MiB + keyword files "
        f"{kw_mib:,.0f} MiB = {parts:,.0f} MiB (ratio {api['api_mib'] / parts:.2f})"
    )
    result = {
        "n": args.n,
        "exact_p50_ms": round(exact_p50, 3),
        "ann_p50_ms": best["p50_ms"],
        "speedup": best["speedup"],
        "recall@10": best["recall@10"],
        "nprobe": best["nprobe"],
        "nlist": ivf.nlist,
        "exact_build_s": round(exact_build, 1),
        "ann_build_s": round(ivf_build, 1),
        "exact_bytes": exact_bytes,
        "ann_bytes": ivf_bytes,
        "deletes_per_s": {"ann": round(ivf_deletes), "exact": round(exact_deletes)},
        "api_rss_mib": round(api["api_mib"]),
        "api_rss_ratio": round(api["api_mib"] / parts, 3),
        "sweep": rows,
        "keyword": kw,
    }
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
