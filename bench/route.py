"""Router benchmark: what the escalation decision adds to a query, against the query's own floor.

    python bench/route.py [--queries 300] [--json]

Same run, same machine, SciFact test claims with their top-5 passages (real abstracts chunked by
the packaged tokenizer's window, looked up by BM25 in memory):
  - baseline: embedding the question with the packaged MiniLM (the cheapest step every query pays);
  - decision: PolicyRouter.decide over the question and its 5 passages (all detectors on every text,
    labels from an in-memory lookup), with escalation enabled;
  - outbound scan: the transport's final scan of a request body built from the same prompt.
Not a test: compare numbers only within one run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from _common import SCIFACT, pct


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import bm25s

    from rag.auth.principal import Principal
    from rag.embedder import load_embedder
    from rag.prompting import build_prompt
    from rag.routing import PolicyRouter
    from rag.sensitivity import Scanner, default_detectors
    from rag.settings import EscalationSettings, Settings
    from rag.types import Passage

    docs = [json.loads(line) for line in (SCIFACT / "corpus.jsonl").read_text().splitlines()]
    texts = [f"{d['title']} {d['text']}"[:1500] for d in docs]
    queries = [json.loads(line)["text"] for line in (SCIFACT / "queries.jsonl").read_text().splitlines()]
    queries = queries[-args.queries :]
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(texts, show_progress=False), show_progress=False)
    top, _ = retriever.retrieve(bm25s.tokenize(queries, show_progress=False), k=5, show_progress=False)

    class Labels:
        def labels(self, ids):
            return {i: "public" for i in ids}

    policy = EscalationSettings(
        enabled=True,
        base_url="https://vendor.example/v1",
        model="m",
        groups=["*"],
        terms=["Bluebird", "Project Nightjar"],
        patterns=[r"\bACME-\d{4}\b"],
    )
    scanner = Scanner(default_detectors(terms=policy.terms, patterns=policy.patterns), timeout_s=5)
    router = PolicyRouter(policy, scanner, Labels())
    user = Principal("bench", "employee", ("staff",))
    embedder = load_embedder(Settings(_env_file=None))
    embedder.embed(["warm up"])

    embed_ms, decide_ms, outbound_ms, targets = [], [], [], {"external": 0, "local": 0}
    for question, ids in zip(queries, top, strict=True):
        passages = [
            Passage(
                int(i),
                int(i),
                f"scifact/{docs[i]['_id']}.txt",
                docs[i]["title"],
                None,
                [],
                texts[i],
                1.0,
                "",
                1,
                "public",
                "scifact",
            )
            for i in ids
        ]
        t0 = time.perf_counter()
        embedder.embed([question])
        t1 = time.perf_counter()
        decision = router.decide(question, passages, user)
        t2 = time.perf_counter()
        prompt = build_prompt(question, list(decision.send) or passages)
        scanner.scan([m["content"] for m in prompt.messages])
        t3 = time.perf_counter()
        embed_ms.append((t1 - t0) * 1000)
        decide_ms.append((t2 - t1) * 1000)
        outbound_ms.append((t3 - t2) * 1000)
        targets[decision.target] += 1

    result = {
        "queries": len(queries),
        "embed_p50_ms": round(statistics.median(embed_ms), 3),
        "decide_p50_ms": round(statistics.median(decide_ms), 3),
        "decide_p95_ms": round(pct(decide_ms, 0.95), 3),
        "outbound_scan_p50_ms": round(statistics.median(outbound_ms), 3),
        "decide_vs_embed": round(statistics.median(decide_ms) / statistics.median(embed_ms), 3),
        "escalated": targets["external"],
        "kept_local": targets["local"],
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['queries']} questions x 5 passages, one run")
    print(f"  embed the question (baseline) p50 {result['embed_p50_ms']:.2f} ms")
    print(
        f"  router decision               p50 {result['decide_p50_ms']:.2f} ms, p95 {result['decide_p95_ms']:.2f} ms "
        f"({result['decide_vs_embed']:.2f}x the embedding)"
    )
    print(f"  final outbound scan           p50 {result['outbound_scan_p50_ms']:.2f} ms")
    print(f"  decisions: {targets['external']} escalated, {targets['local']} kept local")


if __name__ == "__main__":
    main()
