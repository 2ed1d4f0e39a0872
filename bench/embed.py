"""Embedding throughput: stock sentence-transformers fp32 vs each backend, same chunks, one run.

    python bench/embed.py [--chunks 1000] [--backends st-bf16-16,st-bf16-64,...] [--json]

Chunks are SciFact abstracts (../shared/eval/scifact) cut to the embedder's window, the same text
ingestion embeds. For each backend: chunks/s, ratio to stock fp32 (measured first and again last:
the baseline is the mean of both, so drift over the run shows), minimum and mean cosine to the
stock vectors, and the process's peak RSS after it ran. Backends:
  st-fp32-64      sentence-transformers fp32, batch 64
  st-bf16-16/64   the weights cast to bfloat16 once (what RAG_EMBED_DTYPE=auto picks on CPUs with
                  native bf16), batch 16 and 64
  ort-fp32        ONNX Runtime, the model exported once from the packaged folder (torch.onnx, no
                  download), length-sorted batches of 64
  ort-int8        the same, dynamically quantised to int8 (MatMul weights, per channel)
With --json one object: stock_cps, best_cps, ratio, min_cosine, backend (the fastest backend whose
minimum cosine is >= 0.99), and every backend's figures.
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
from _common import SCIFACT  # noqa: E402 - bench/ is the script's folder

ALL = "st-fp32-64,st-bf16-16,st-bf16-64,ort-fp32,ort-int8"


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def sentence_transformer(path: str, dtype: str, batch: int):  # noqa: ANN201
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(path, device="cpu", local_files_only=True)
    if dtype == "bf16":
        model.to(torch.bfloat16)

    def embed(texts: list[str]) -> np.ndarray:
        out = model.encode(texts, batch_size=batch, convert_to_tensor=True, show_progress_bar=False)
        return normalise(out.float().numpy())

    return embed


def onnx_runtime(path: str, int8: bool, workdir: Path, batch: int = 64):  # noqa: ANN201
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

            def forward(self, input_ids, attention_mask, token_type_ids):  # noqa: ANN001, ANN201
                return self.model(input_ids=input_ids, attention_mask=attention_mask,
                                  token_type_ids=token_type_ids).last_hidden_state

        sample = tokenizer(["a sample sentence"], return_tensors="pt")
        names = ["input_ids", "attention_mask", "token_type_ids"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(Encoder(), tuple(sample[n] for n in names), str(exported), input_names=names,
                              output_names=["hidden"], opset_version=17, dynamo=False,
                              dynamic_axes={n: {0: "batch", 1: "seq"} for n in [*names, "hidden"]})
    file = exported
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        file = workdir / "minilm.int8.onnx"
        if not file.exists():
            quantize_dynamic(str(exported), str(file), weight_type=QuantType.QInt8, per_channel=True,
                             op_types_to_quantize=["MatMul"])
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])

    def embed(texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), 384), dtype=np.float32)
        order = np.argsort([len(t) for t in texts])
        for start in range(0, len(texts), batch):
            rows = order[start:start + batch]
            enc = tokenizer([texts[i] for i in rows], padding=True, truncation=True, max_length=256, return_tensors="np")
            hidden = session.run(None, {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")})[0]
            mask = enc["attention_mask"][..., None].astype(np.float32)
            out[rows] = (hidden * mask).sum(1) / mask.sum(1)
        return normalise(out)

    return embed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=1000)
    parser.add_argument("--backends", default=ALL)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    say = (lambda *a: print(*a, file=sys.stderr)) if args.json else print

    from rag.settings import Settings

    path = Settings(_env_file=None).resolved_model_path
    docs = [json.loads(line) for line in (SCIFACT / "corpus.jsonl").read_text().splitlines()[: args.chunks]]
    texts = [f"{d['title']} {d['text']}" for d in docs]

    def measure(embed) -> tuple[np.ndarray, float]:  # noqa: ANN001
        embed(texts[:16])  # warm up
        started = time.perf_counter()
        vectors = embed(texts)
        return vectors, len(texts) / (time.perf_counter() - started)

    stock_embed = sentence_transformer(path, "fp32", 32)  # sentence-transformers' own default batch
    reference, stock_first = measure(stock_embed)
    say(f"{len(texts)} SciFact chunks; stock sentence-transformers fp32: {stock_first:.1f} chunks/s")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.backends.split(","):
            kind, *rest = name.split("-")
            if kind == "st":
                embed = sentence_transformer(path, rest[0], int(rest[1]))
            else:
                embed = onnx_runtime(path, rest[0] == "int8", Path(tmp))
            vectors, cps = measure(embed)
            cosine = np.sum(vectors * reference, axis=1)
            rows.append({"backend": name, "cps": round(cps, 2), "min_cosine": round(float(cosine.min()), 5),
                         "mean_cosine": round(float(cosine.mean()), 5), "peak_rss_mib": round(peak_rss_mib())})
            del embed
    _, stock_last = measure(stock_embed)
    stock = (stock_first + stock_last) / 2
    for row in rows:
        row["ratio"] = round(row["cps"] / stock, 2)
        say(f"  {row['backend']:<11} {row['cps']:7.1f} chunks/s  {row['ratio']:.2f}x  min cosine {row['min_cosine']:.5f}"
            f"  (peak RSS so far {row['peak_rss_mib']:,} MiB)")
    say(f"stock again at the end: {stock_last:.1f} chunks/s (baseline {stock:.1f}, the mean)")
    safe = [r for r in rows if r["min_cosine"] >= 0.99]
    best = max(safe, key=lambda r: r["cps"]) if safe else None
    if best:
        say(f"fastest with cosine >= 0.99: {best['backend']} at {best['ratio']:.2f}x stock fp32")
    if args.json:
        print(json.dumps({"stock_cps": round(stock, 2), "best_cps": best["cps"] if best else None,
                          "ratio": best["ratio"] if best else None, "min_cosine": best["min_cosine"] if best else None,
                          "backend": best["backend"] if best else None, "backends": rows}))


if __name__ == "__main__":
    main()
