"""Embedding throughput: stock sentence-transformers fp32 vs each backend, same chunks, one run.

    python bench/embed.py [--chunks 1000] [--backends rag,st-bf16-64,...] [--rounds 3] [--ndcg] [--json]

Chunks are SciFact abstracts (../shared/eval/scifact) cut to the embedder's window, the same text
ingestion embeds. Stock sentence-transformers fp32 and every backend are measured once per round,
interleaved, so the machine's drift hits all alike; chunks/s and the ratio to stock are medians
over the rounds (per-round ratios printed too). Also: minimum and mean cosine to the stock vectors,
the RSS each backend adds when loaded, and with --ndcg SciFact test nDCG@10 (dense search over the
5,183 abstracts) of stock fp32 against the fastest backend. Backends:
  rag             the project's embedder as shipped (rag/embedder.py with default settings: the bulk
                  path chosen by its calibration on this CPU, printed with the calibration figures)
  rag-<dtype>     the project's embedder forced onto one path: rag-int8 (ONNX Runtime int8, VNNI),
                  rag-onnx (ONNX Runtime fp32), rag-bfloat16, rag-float32
  st-fp32-64      sentence-transformers fp32, batch 64
  st-bf16-16/64   the weights cast to bfloat16 once, batch 16 and 64
  ort-fp32        ONNX Runtime, the model exported once from the packaged folder (torch.onnx, no
                  download), length-sorted batches of 64
  ort-int8        the same, dynamically quantised to int8 (MatMul weights, per channel)
With --json one object: stock_cps, best_cps, ratio, min_cosine, backend (the fastest backend whose
minimum cosine is >= 0.99), every backend's figures, and with --ndcg ndcg@10_stock, ndcg@10_best.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from _common import SCIFACT

ALL = "rag,st-fp32-64,st-bf16-64,ort-fp32,ort-int8"


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS:"))


def normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def sentence_transformer(path: str, dtype: str, batch: int):
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(path, device="cpu", local_files_only=True)
    if dtype == "bf16":
        model.to(torch.bfloat16)

    def embed(texts: list[str]) -> np.ndarray:
        out = model.encode(texts, batch_size=batch, convert_to_tensor=True, show_progress_bar=False)
        return normalise(out.float().numpy())

    return embed


def onnx_runtime(path: str, int8: bool, workdir: Path, batch: int = 64):
    import onnxruntime as ort
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    exported = workdir / "minilm.onnx"
    if not exported.exists():
        model = AutoModel.from_pretrained(path, local_files_only=True).eval()

        class Encoder(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, input_ids, attention_mask, token_type_ids):
                return self.model(
                    input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
                ).last_hidden_state

        sample = tokenizer(["a sample sentence"], return_tensors="pt")
        names = ["input_ids", "attention_mask", "token_type_ids"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                Encoder(),
                tuple(sample[n] for n in names),
                str(exported),
                input_names=names,
                output_names=["hidden"],
                opset_version=17,
                dynamo=False,
                dynamic_axes={n: {0: "batch", 1: "seq"} for n in [*names, "hidden"]},
            )
    file = exported
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        file = workdir / "minilm.int8.onnx"
        if not file.exists():
            quantize_dynamic(
                str(exported), str(file), weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["MatMul"]
            )
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])

    def embed(texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), 384), dtype=np.float32)
        order = np.argsort([len(t) for t in texts])
        for start in range(0, len(texts), batch):
            rows = order[start : start + batch]
            enc = tokenizer(
                [texts[i] for i in rows], padding=True, truncation=True, max_length=256, return_tensors="np"
            )
            hidden = session.run(
                None, {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")}
            )[0]
            mask = enc["attention_mask"][..., None].astype(np.float32)
            out[rows] = (hidden * mask).sum(1) / mask.sum(1)
        return normalise(out)

    return embed


SHIPPED: dict = {}


def queries_of(n: int) -> list[str]:
    return [json.loads(line)["text"] for line in (SCIFACT / "queries.jsonl").read_text().splitlines()[:n]]


def single_queries(stock, queries: list[str], rounds: int = 3) -> dict:
    """Single-query encode latency: stock fp32 (one text through sentence-transformers) vs the shipped
    embedder's query path, interleaved per query; p50 of each and the p50 of the per-query ratio."""
    embedder = SHIPPED["rag"]
    stock_ms, rag_ms, agree, to_stock = [], [], [], []
    for _ in range(rounds):
        for q in queries:
            t = time.perf_counter()
            reference = stock([q])[0]
            stock_ms.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            vector = embedder.embed_query(q)
            rag_ms.append((time.perf_counter() - t) * 1000)
            agree.append(float(vector @ embedder.embed([q])[0]))
            to_stock.append(float(vector @ reference))
    out = {
        "query_path": embedder.query_path,
        "stock_fp32_p50_ms": round(float(np.median(stock_ms)), 2),
        "rag_query_p50_ms": round(float(np.median(rag_ms)), 2),
        "speedup": round(float(np.median(stock_ms)) / float(np.median(rag_ms)), 2),
        "min_cosine_to_bulk_path": round(min(agree), 5),
        "min_cosine_to_stock": round(min(to_stock), 5),
    }
    print(
        f"single query ({len(queries)} SciFact claims x {rounds}, interleaved): stock fp32 p50 "
        f"{out['stock_fp32_p50_ms']} ms, rag query path {embedder.query_path} p50 {out['rag_query_p50_ms']} ms "
        f"({out['speedup']}x); min cosine to the bulk path {out['min_cosine_to_bulk_path']}",
        file=sys.stderr,
    )
    return out


def make_backend(name: str, path: str, workdir: Path):
    if name == "rag":
        from rag.embedder import load_embedder
        from rag.settings import Settings

        embedder = SHIPPED["rag"] = load_embedder(Settings(_env_file=None))
        keys = ("texts_per_s", "query_ms", "min_cosine")
        figures = {k: {m: v[m] for m in keys} for k, v in embedder.calibration.items()}
        print(
            f"rag embedder: bulk path {embedder.path}, query path {embedder.query_path} "
            f"({'cached calibration' if embedder.calibrated_from_cache else 'calibrated now'}: {json.dumps(figures)})",
            file=sys.stderr,
        )
        return embedder.embed
    if name.startswith("rag-"):  # one path of the project's embedder, forced: rag-int8, rag-onnx, ...
        from rag.embedder import SentenceTransformerEmbedder

        dtype = name.removeprefix("rag-")
        return SentenceTransformerEmbedder(path, dtype=dtype, query_dtype=dtype, cache_dir=workdir).embed
    kind, *rest = name.split("-")
    if kind == "st":
        return sentence_transformer(path, rest[0], int(rest[1]))
    return onnx_runtime(path, rest[0] == "int8", workdir)


def dense_ndcg(embed, corpus: list[dict], queries: dict[str, str], qrels: dict) -> float:
    """nDCG@10 of exact cosine search over SciFact's abstracts (one vector each) with this embedder."""
    from rag.evaluation import score

    docs = embed([f"{d['title']} {d['text']}" for d in corpus])
    qids = list(queries)
    sims = embed([queries[q] for q in qids]) @ docs.T
    top = np.argsort(-sims, axis=1)[:, :100]
    rankings = {q: [corpus[i]["_id"] for i in row] for q, row in zip(qids, top, strict=True)}
    return score(rankings, qrels)["ndcg@10"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=1000)
    parser.add_argument("--backends", default=ALL)
    parser.add_argument("--rounds", type=int, default=3, help="stock and every backend measured once per round")
    parser.add_argument("--ndcg", action="store_true", help="also SciFact test nDCG@10: stock fp32 vs the best")
    parser.add_argument("--queries", type=int, default=40, help="single-query latency on this many claims")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    say = (lambda *a: print(*a, file=sys.stderr)) if args.json else print

    from rag.settings import Settings

    path = Settings(_env_file=None).resolved_model_path
    corpus = [json.loads(line) for line in (SCIFACT / "corpus.jsonl").read_text().splitlines()]
    texts = [f"{d['title']} {d['text']}" for d in corpus[: args.chunks]]

    def measure(embed) -> tuple[np.ndarray, float]:
        started = time.perf_counter()
        vectors = embed(texts)
        return vectors, len(texts) / (time.perf_counter() - started)

    names = args.backends.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        embedders = {"stock": sentence_transformer(path, "fp32", 32)}  # sentence-transformers' default batch
        rss = {}
        embedders["stock"](texts[:16])  # warm up
        for name in names:
            before = rss_mib()
            embedders[name] = make_backend(name, path, Path(tmp))
            embedders[name](texts[:16])  # warm up
            rss[name] = round(rss_mib() - before)
        reference = measure(embedders["stock"])[0]
        cps: dict[str, list[float]] = {name: [] for name in embedders}
        cosines = {}
        # interleaved rounds: drift of the machine hits stock and backends alike; medians reported
        for round_number in range(args.rounds):
            for name, embed in embedders.items():
                vectors, speed = measure(embed)
                cps[name].append(speed)
                cosines[name] = np.sum(vectors * reference, axis=1)
            say(f"round {round_number + 1}: " + ", ".join(f"{n} {v[-1]:.1f}" for n, v in cps.items()) + " chunks/s")
        stock = float(np.median(cps["stock"]))
        rows = []
        for name in names:
            per_round = [b / a for a, b in zip(cps["stock"], cps[name], strict=True)]
            rows.append(
                {
                    "backend": name,
                    "cps": round(float(np.median(cps[name])), 2),
                    "ratio": round(float(np.median(cps[name])) / stock, 2),
                    "ratio_per_round": [round(r, 2) for r in per_round],
                    "min_cosine": round(float(cosines[name].min()), 5),
                    "mean_cosine": round(float(cosines[name].mean()), 5),
                    "rss_added_mib": rss[name],
                }
            )
        say(
            f"{len(texts)} SciFact chunks, {args.rounds} interleaved rounds; stock sentence-transformers fp32 "
            f"(batch 32): median {stock:.1f} chunks/s (rounds: {', '.join(f'{v:.1f}' for v in cps['stock'])})"
        )
        for row in rows:
            say(
                f"  {row['backend']:<11} {row['cps']:7.1f} chunks/s  {row['ratio']:.2f}x (per round "
                f"{', '.join(f'{r:.2f}' for r in row['ratio_per_round'])})  min cosine {row['min_cosine']:.5f}"
                f"  (+{row['rss_added_mib']:,} MiB RSS loaded)"
            )
        say(f"process peak RSS {peak_rss_mib():,.0f} MiB (all backends loaded at once)")
        safe = [r for r in rows if r["min_cosine"] >= 0.99]
        best = max(safe, key=lambda r: r["cps"]) if safe else None
        result = {
            "stock_cps": round(stock, 2),
            "best_cps": best["cps"] if best else None,
            "ratio": best["ratio"] if best else None,
            "min_cosine": best["min_cosine"] if best else None,
            "backend": best["backend"] if best else None,
            "rounds": args.rounds,
            "backends": rows,
        }
        if "rag" in names:
            result["query"] = single_queries(embedders["stock"], queries_of(args.queries))
        if best:
            say(f"fastest with cosine >= 0.99: {best['backend']} at {best['ratio']:.2f}x stock fp32")
        if best and args.ndcg:
            from rag.evaluation import load_beir

            beir = load_beir(SCIFACT, "test")
            stock_ndcg = dense_ndcg(embedders["stock"], corpus, beir.queries, beir.qrels)
            best_ndcg = dense_ndcg(embedders[best["backend"]], corpus, beir.queries, beir.qrels)
            result.update(
                {
                    "ndcg@10_stock": round(stock_ndcg, 4),
                    "ndcg@10_best": round(best_ndcg, 4),
                    "ndcg@10_delta": round(best_ndcg - stock_ndcg, 4),
                }
            )
            say(
                f"SciFact test nDCG@10 (dense, {len(corpus):,} abstracts, {len(beir.queries)} claims): stock fp32 "
                f"{stock_ndcg:.4f}, {best['backend']} {best_ndcg:.4f} (delta {best_ndcg - stock_ndcg:+.4f})"
            )
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
