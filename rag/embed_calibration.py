"""Pick the embedder's bulk and query paths on this CPU by measuring them, not from a table of CPUs.

A short calibration on fixed texts: every candidate path embeds the same batch (interleaved rounds,
best time kept, so another process's burst hits all alike) and the same single queries. A path is
eligible only if its vectors stay close to fp32 (bulk: min cosine >= BULK_MIN_COSINE) and, for the
query path, to the chosen bulk path's (>= QUERY_MIN_COSINE: queries are compared with indexed
vectors). The choice is cached per CPU (model name, flags, cores), model sha, threads and library
versions, so a process pays the calibration once per machine and model.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from rag.embed_paths import EXPORT_FORMAT

log = logging.getLogger(__name__)

BULK_MIN_COSINE = 0.993  # calibration margin over the 0.99 goal measured on real corpora
QUERY_MIN_COSINE = 0.999
# another bulk path replaces the default one (bf16 on native-bf16 CPUs, else fp32) only when measured
# this much faster: a short calibration on a busy machine is noisy, and a wrong switch costs more
SWITCH_MARGIN = 1.2
FORMAT = 3

_SENTENCES = [
    "Aspirin reduces the risk of myocardial infarction in patients with stable angina.",
    "The quarterly report shows revenue growth of 12 percent, driven by subscriptions in Europe.",
    "Employees must submit travel expense claims within thirty days, with receipts attached.",
    "Photosynthesis converts light energy into chemical energy stored in glucose molecules.",
    "The court held that the contract was void because one party lacked the capacity to agree.",
    "Rotate the database credentials every ninety days and never store them in the repository.",
    "Mutations in the BRCA1 gene increase the lifetime risk of breast and ovarian cancer.",
    "The new onboarding process pairs each engineer with a mentor for the first six weeks.",
    "Glaciers in the Alps have lost about half of their volume since the middle of the last century.",
    "To reset a password, open the account settings page and follow the link sent by email.",
    "Vitamin D deficiency is associated with reduced bone density in older adults.",
    "The committee approved the budget after a long debate about infrastructure spending.",
]
QUERIES = [
    "does aspirin prevent heart attacks",
    "how do I reset my password",
    "travel expense deadline",
    "what causes glacier retreat",
    "BRCA1 cancer risk",
    "who approved the budget",
]


def calibration_texts() -> list[str]:
    """Medium and window-filling passages, as ingestion produces them (most chunks fill the window)."""
    return [" ".join(_SENTENCES[(i + j) % len(_SENTENCES)] for j in range(4 if i < 3 else 12)) for i in range(12)]


@dataclass
class Choice:
    bulk: str
    query: str
    measured: dict[str, dict[str, float]] = field(default_factory=dict)  # path -> figures
    cached: bool = False


def cpu_key() -> str:
    """The CPU as far as kernels care: model name, flags, cores."""
    model, flags = platform.machine(), ""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as f:
            for line in f:
                if line.startswith("model name") and model == platform.machine():
                    model = line.split(":", 1)[1].strip()
                elif line.startswith(("flags", "Features")) and not flags:
                    flags = line.split(":", 1)[1].strip()
    except OSError:
        pass
    import hashlib

    return hashlib.sha256(f"{model}|{flags}|{os.cpu_count()}".encode()).hexdigest()[:16]


def cache_key(model_sha: str, threads: int, batch_size: int, candidates: Sequence[str]) -> str:
    import onnxruntime
    import torch

    # the export format too: a new export (another graph, another quantisation) must be measured again
    versions = f"{torch.__version__}|{getattr(onnxruntime, '__version__', '-')}|x{EXPORT_FORMAT}"
    return f"{cpu_key()}|{model_sha}|t{threads}|b{batch_size}|{','.join(candidates)}|{versions}|v{FORMAT}"


def read_cache(file: Path | None, key: str) -> Choice | None:
    if file is None or not file.is_file():
        return None
    try:
        entry = json.loads(file.read_text()).get(key)
        if entry is None:
            return None
        return Choice(entry["bulk"], entry["query"], entry.get("measured", {}), cached=True)
    except (OSError, ValueError, KeyError, AttributeError):
        return None  # a damaged cache only costs a new calibration


def write_cache(file: Path | None, key: str, choice: Choice) -> None:
    if file is None:
        return
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        try:
            entries = json.loads(file.read_text()) if file.is_file() else {}
        except ValueError:
            entries = {}  # damaged: replaced
        if not isinstance(entries, dict):
            entries = {}
        entries[key] = {k: v for k, v in asdict(choice).items() if k != "cached"}
        partial = file.with_name(f"{file.name}.{os.getpid()}.tmp")
        partial.write_text(json.dumps(entries, indent=1))
        os.replace(partial, file)
    except (OSError, ValueError) as exc:
        log.warning("embedder calibration not cached: %s", exc)


def _timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def calibrate(
    paths: Mapping[str, Callable],
    *,
    bulk: Sequence[str] | None = None,
    query: Sequence[str] | None = None,
    rounds: int = 2,
    default: str = "float32",
) -> Choice:
    """`paths` maps name -> embed function; 'float32' must be among them (the reference). `bulk` and
    `query` restrict the names each choice may take (default: all). When no bulk candidate is accurate
    enough, fp32 is chosen."""
    texts = calibration_texts()
    reference = paths["float32"](texts)
    ref_queries = paths["float32"](QUERIES)
    vectors: dict[str, np.ndarray] = {"float32": reference}
    query_vectors: dict[str, np.ndarray] = {"float32": ref_queries}
    bulk_s = {name: float("inf") for name in paths}
    query_s = {name: float("inf") for name in paths}
    for name, embed in paths.items():
        if name != "float32":
            vectors[name] = embed(texts)  # also the warm-up
            query_vectors[name] = embed(QUERIES)
    for _ in range(rounds):
        for name, embed in paths.items():
            bulk_s[name] = min(bulk_s[name], _timed(lambda e=embed: e(texts)))
            times = sorted(_timed(lambda e=embed, q=q: e([q])) for q in QUERIES)
            query_s[name] = min(query_s[name], times[len(times) // 2])
    measured: dict[str, dict] = {}
    for name in paths:
        agrees = {
            other: round(
                min(
                    float(np.min(np.sum(vectors[name] * vectors[other], axis=1))),
                    float(np.min(np.sum(query_vectors[name] * query_vectors[other], axis=1))),
                ),
                5,
            )
            for other in paths
        }
        measured[name] = {
            "texts_per_s": round(len(texts) / bulk_s[name], 2),
            "query_ms": round(query_s[name] * 1000, 3),
            "min_cosine": agrees["float32"],
            "agrees_with": agrees,
        }
    return choose(measured, bulk=bulk, query=query, default=default)


def choose(
    measured: Mapping[str, Mapping],
    *,
    bulk: Sequence[str] | None = None,
    query: Sequence[str] | None = None,
    default: str = "float32",
) -> Choice:
    """From measured figures: the fastest accurate bulk path (fp32 when none is; `default` unless another
    is SWITCH_MARGIN faster), then the fastest single-query path whose vectors agree with that bulk
    path's to QUERY_MIN_COSINE."""
    eligible = [n for n in (bulk or measured) if measured[n]["min_cosine"] >= BULK_MIN_COSINE] or ["float32"]
    bulk_name = max(eligible, key=lambda n: measured[n]["texts_per_s"])
    if default in eligible and measured[bulk_name]["texts_per_s"] < SWITCH_MARGIN * measured[default]["texts_per_s"]:
        bulk_name = default
    query_ok = [
        n for n in (query or measured) if n == bulk_name or measured[n]["agrees_with"][bulk_name] >= QUERY_MIN_COSINE
    ] or [bulk_name]
    query_name = min(query_ok, key=lambda n: measured[n]["query_ms"])
    return Choice(bulk_name, query_name, {k: dict(v) for k, v in measured.items()})
