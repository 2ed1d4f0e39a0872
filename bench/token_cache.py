"""bench/embed_cache.py keyed by the model's input, not the text: for wrapped copies of a collection.

    python bench/token_cache.py CACHE.sqlite rag eval beir FOLDER --work-dir DIR --json

A sentence-transformers model sees only the token ids its tokenizer makes (truncated to its window),
so two texts with the same ids have the same vector. all-MiniLM-L6-v2's WordPiece tokenizer treats a
newline like a space, so a chunk of the 72-column copy of SciFact (bench/wrap_beir.py) whose words
are those of a chunk of the plain copy is not embedded a second time: the wrapped run then costs
what its *different* chunks cost. The key is the SHA-256 of the ids, so this is exact (not a guess
from similar text); only batch padding can move a float in the last place. Not for the product.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import embed_cache


class TokenCachingEmbedder(embed_cache.CachingEmbedder):
    """The cache of embed_cache.py, keyed by the SHA-256 of the token ids the model would read."""

    def _keys(self, texts: Sequence[str]) -> list[str]:
        model = self.inner._model
        ids = model.tokenizer(list(texts), truncation=True, max_length=model.max_seq_length)["input_ids"]
        return ["t:" + hashlib.sha256(np.asarray(i, dtype="<i4").tobytes()).hexdigest() for i in ids]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        keys = self._keys(texts)
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
        return np.stack([found[k] for k in keys]).astype(np.float32, copy=False)


if __name__ == "__main__":
    embed_cache.CachingEmbedder = TokenCachingEmbedder
    embed_cache.main()
