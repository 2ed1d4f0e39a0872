"""The sentence-transformers embedder (rag.protocols.Embedder), loaded from a local folder only."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rag.cpu_threads import set_torch_threads
from rag.embed_calibration import cache_key, calibrate, read_cache, write_cache
from rag.embed_paths import (
    ALL_PATHS,
    ONNX_PATHS,
    TORCH_PATHS,
    EmbedFn,
    export_folder,
    model_sha,
    onnx_path,
    onnx_supported,
    torch_path,
)
from rag.errors import ConfigError

if TYPE_CHECKING:
    from rag.settings import Settings

# Weights come from local folders only: a hub lookup would fail on an air-gapped network anyway.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

log = logging.getLogger(__name__)


def cpu_has_native_bf16() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


# what each RAG_EMBED_DTYPE value lets the calibration choose from ("auto": everything measured)
DTYPE_PATHS = {
    "float32": ("float32",),
    "bfloat16": ("bfloat16",),
    "int8": ("onnx-int8",),
    "onnx": ("onnx-float32",),
    "auto": ALL_PATHS,
}


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 (or any local sentence-transformers folder) on the CPU.

    The bulk path (ingestion) and the query path (one text, latency) are chosen by measuring the
    candidate paths on this CPU (rag.embed_calibration), cached in `cache_dir` when given.
    `path` and `query_path` say which ran; `calibration` holds the measured figures."""

    def __init__(
        self,
        model_path: str,
        *,
        dtype: str = "auto",
        batch_size: int = 16,
        threads: int = 0,
        cache_dir: Path | None = None,
        query_dtype: str = "auto",
    ) -> None:
        if not os.path.isdir(model_path):
            raise ConfigError(f"embedder model folder not found: {model_path}")
        if dtype not in DTYPE_PATHS or query_dtype not in DTYPE_PATHS:
            raise ConfigError(f"embedder dtype must be one of {', '.join(DTYPE_PATHS)}")
        from sentence_transformers import SentenceTransformer

        threads = set_torch_threads(threads)
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        self._model = SentenceTransformer(model_path, device="cpu", local_files_only=True)
        self.batch_size = batch_size
        self.dim = int(self._model.get_embedding_dimension())
        # the window includes [CLS] and [SEP]
        self.max_tokens = int(self._model.max_seq_length) - 2
        self.calls = 0
        self.texts_embedded = 0
        self._threads = threads
        self._sha = model_sha(model_path)
        self._cache_dir = cache_dir
        self._scratch: Path | None = None
        self._paths: dict[str, EmbedFn] = {}
        bulk = self._candidates(DTYPE_PATHS[dtype])
        query = self._candidates(DTYPE_PATHS[query_dtype])
        self.calibration: dict[str, dict[str, float]] = {}
        self.calibrated_from_cache = False
        if len(bulk) == 1 and len(query) == 1:
            self.path, self.query_path = bulk[0], query[0]
        else:
            self._choose(bulk, query)
        for name in list(self._paths):  # free the paths that were measured but not chosen
            if name not in (self.path, self.query_path):
                del self._paths[name]
        self.dtype = self.path  # the name this attribute always had (float32, bfloat16, ...)

    # -- choosing -------------------------------------------------------------------------------

    def _candidates(self, names: tuple[str, ...]) -> list[str]:
        """The paths that build on this machine; a path that fails to build is left out (logged)."""
        out = []
        for name in names:
            if name == "bfloat16" and len(names) > 1 and not cpu_has_native_bf16():
                continue  # emulated bf16 is never the fastest; skip the measurement
            if name in ONNX_PATHS and not onnx_supported(self._model):
                continue
            try:
                self._build(name)
            except Exception as exc:  # any failure of an optional path means: not this path
                log.warning("embedder path %s unavailable: %s", name, type(exc).__name__)
                if len(names) == 1:
                    raise ConfigError(f"embedder path {name} unavailable on this machine: {exc}") from exc
                continue
            out.append(name)
        return out or ["float32"]

    def _build(self, name: str) -> EmbedFn:
        if name not in self._paths:
            if name in TORCH_PATHS:
                self._paths[name] = torch_path(
                    self._model, name, self.batch_size if name == "float32" else max(self.batch_size, 64)
                )
            else:
                folder = export_folder(self._cache_dir or self._private_dir(), self._sha)
                self._paths[name] = onnx_path(self._model, name, max(self.batch_size, 64), self._threads, folder)
        return self._paths[name]

    def _private_dir(self) -> Path:
        """Without a cache folder the exports are this object's own (removed with it): a shared
        temporary folder would hand one user's or version's files to another."""
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="rag-embedder-"))
            weakref.finalize(self, shutil.rmtree, str(self._scratch), True)
        return self._scratch

    def _choose(self, bulk: list[str], query: list[str]) -> None:
        names = sorted(set(bulk) | set(query) | {"float32"}, key=ALL_PATHS.index)
        key = cache_key(self._sha, self._threads, self.batch_size, names)
        file = self._cache_dir / "embedder-calibration.json" if self._cache_dir else None
        choice = read_cache(file, key)
        if choice is None or choice.bulk not in bulk or choice.query not in query:
            for name in names:
                self._build(name)
            default = "bfloat16" if "bfloat16" in bulk else "float32"
            choice = calibrate({n: self._paths[n] for n in names}, bulk=bulk, query=query, default=default)
            write_cache(file, key, choice)
        self.path, self.query_path = choice.bulk, choice.query
        self.calibration = choice.measured
        self.calibrated_from_cache = choice.cached
        self._build(self.path)
        self._build(self.query_path)

    # -- embedding ------------------------------------------------------------------------------

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        self.texts_embedded += len(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._paths[self.path](texts)

    def embed_query(self, text: str) -> np.ndarray:
        """One query on the fastest single-text path (its vectors agree with `embed`'s to cosine 0.999)."""
        self.calls += 1
        self.texts_embedded += 1
        return self._paths[self.query_path]([text])[0]


def load_embedder(settings: Settings, model_path: str | None = None) -> SentenceTransformerEmbedder:
    """The configured model, or another folder (a registry version) with the same settings and paths."""
    return SentenceTransformerEmbedder(
        model_path or settings.resolved_model_path,
        dtype=settings.embed_dtype,
        batch_size=settings.embed_batch_size,
        threads=settings.embed_threads,
        cache_dir=settings.resolved_embed_cache_dir,
        query_dtype=settings.embed_query_dtype,
    )
