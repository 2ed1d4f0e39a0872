"""An embedding cache for evaluations: each distinct text is embedded once, whichever run asks.

    python bench/embed_cache.py CACHE.sqlite rag eval beir FOLDER --work-dir DIR --json

runs the `rag` command line with its embedder wrapped by the cache (keyed by the SHA-256 of the text;
an embedding depends on the text alone), so evaluating several chunkers or fusions over one
collection embeds only the chunk texts and queries no earlier run embedded. Works with any checkout
on PYTHONPATH (it patches `cli.runtime.Runtime.embedder`), so main's code can be measured the same
way. Not for the product: a service embeds each chunk once anyway.
"""

from __future__ import annotations

import hashlib
import resource
import sqlite3
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np


class CachingEmbedder:
    """Any Embedder, with its vectors kept in a SQLite file by the text's SHA-256."""

    def __init__(self, inner, path: Path) -> None:
        self.inner = inner
        self.dim = inner.dim
        self.max_tokens = inner.max_tokens
        self.db = sqlite3.connect(str(path), timeout=60)
        self.db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vector BLOB NOT NULL)")
        self.hits = 0
        self.misses = 0
        self.embed_s = 0.0

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        keys = [hashlib.sha256(t.encode("utf-8", "surrogatepass")).hexdigest() for t in texts]
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(keys), 500):
            part = keys[start : start + 500]
            marks = ",".join("?" * len(part))
            for key, blob in self.db.execute(f"SELECT key, vector FROM vectors WHERE key IN ({marks})", part):
                found[key] = np.frombuffer(blob, dtype="<f4")
        todo = list(dict.fromkeys(k for k in keys if k not in found))
        if todo:
            text_of = dict(zip(keys, texts, strict=True))
            started = time.perf_counter()
            vectors = self.inner.embed([text_of[k] for k in todo])
            self.embed_s += time.perf_counter() - started
            with self.db:
                self.db.executemany(
                    "INSERT OR REPLACE INTO vectors VALUES (?, ?)",
                    [(k, v.astype("<f4").tobytes()) for k, v in zip(todo, vectors, strict=True)],
                )
            found.update(zip(todo, vectors, strict=True))
        self.misses += len(todo)
        self.hits += len(keys) - len(todo)
        if not keys:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([found[k] for k in keys]).astype(np.float32, copy=False)


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    cache = Path(sys.argv[1])
    here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if p and str(Path(p).resolve()) != here]  # bench/ingest.py is not `ingest`
    from cli import runtime
    from rag.embedder import load_embedder

    state: dict = {}

    def cached(self):  # replaces the lazy property: one caching embedder per process
        if "embedder" not in state:
            state["embedder"] = CachingEmbedder(load_embedder(self.settings), cache)
        return state["embedder"]

    runtime.Runtime.embedder = property(cached)
    import cli.main as rag_cli

    try:
        rag_cli.main.main(args=sys.argv[3:], prog_name="rag", standalone_mode=False)
    finally:
        e = state.get("embedder")
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu = usage.ru_utime + usage.ru_stime  # the work done, whatever else shares the CPU
        if e is not None:
            print(
                f"embed cache: {e.misses} embedded ({e.embed_s:.1f} s), {e.hits} from the cache; cpu {cpu:.1f} s",
                file=sys.stderr,
            )


if __name__ == "__main__":
    main()
