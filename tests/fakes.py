"""Deterministic fakes for unit tests of logic (never for proving a feature works with real models).

`FakeEmbedder` implements `rag.embedder.Embedder` without loading any weights. A text becomes a
signed, hashed bag of features (lower-cased words, weighted 1 + log tf, and the character trigrams
of those words at a lower weight), projected into 384 dimensions and normalised. So:

* the same text gives the same vector, in every process and on every run (blake2b with a fixed key,
  never Python's randomised `hash()`);
* texts sharing words, or word stems (trigrams: "employee" / "employees"), have a high cosine;
  texts sharing nothing are near-orthogonal;
* it knows no synonyms: a paraphrase with other words is *not* found. Tests about semantic
  retrieval quality need the real model (the `embedder` / `real_embedder` fixtures).

Chunking is unchanged: it measures chunks with the real model's tokenizer (`rag.tokens`), and
`max_tokens` is the real model's window, read from the packaged folder's config.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

DIM = 384  # all-MiniLM-L6-v2's width: stored vectors and indexes have the real shape
_KEY = b"private-rag-fake-embedder-v1"  # the "seed" of the projection
_WORD = re.compile(r"\w+", re.UNICODE)
_TRIGRAM_WEIGHT = 0.25
# Function words carry no topic; without them every short question would be close to every chunk.
_STOPWORDS = frozenset(
    "a an and are as at be been but by can could do does did for from had has have how i if in into is it its "
    "may me must my no not of on or our so such than that the their them then there these they this those to "
    "us was we were what when where which who whom why will with would you your".split()
)


@lru_cache(maxsize=1)
def real_window() -> int:
    """The packaged model's token window without its two special tokens, as `rag.tokens` computes it."""
    from rag.settings import Settings

    config = Path(Settings(_env_file=None).resolved_model_path) / "sentence_bert_config.json"
    return int(json.loads(config.read_text()).get("max_seq_length", 256)) - 2


@lru_cache(maxsize=1 << 16)
def _slots(feature: str) -> tuple[tuple[int, float], ...]:
    """Two (dimension, sign) slots per feature: a fixed sparse random projection."""
    digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8, key=_KEY).digest()
    out = []
    for part in (digest[:4], digest[4:]):
        value = int.from_bytes(part, "little")
        out.append((value % DIM, 1.0 if (value >> 31) & 1 else -1.0))
    return tuple(out)


def features(text: str) -> Counter[str]:
    """Weighted features of one text (exposed so tests can reason about what the fake sees)."""
    words = [w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS]
    weights: Counter[str] = Counter()
    for word, tf in Counter(words).items():
        weights["w:" + word] += 1.0 + math.log(tf)
        padded = f"<{word}>"
        for i in range(len(padded) - 2):
            weights["c:" + padded[i : i + 3]] += _TRIGRAM_WEIGHT
    if not weights:  # only punctuation or stop words: still a unit vector, and a stable one
        weights["raw:" + text.strip().lower()] = 1.0
    return weights


class FakeEmbedder:
    """Deterministic stand-in for `SentenceTransformerEmbedder`; counts calls like `CountingEmbedder`."""

    dtype = "float32"

    def __init__(self, dim: int = DIM, max_tokens: int | None = None) -> None:
        if dim != DIM:
            raise ValueError(f"the fake embedder projects into {DIM} dimensions")
        self.dim = dim
        self.max_tokens = real_window() if max_tokens is None else max_tokens
        self.calls = 0
        self.texts = 0

    @property
    def texts_embedded(self) -> int:  # SentenceTransformerEmbedder's name for the same count
        return self.texts

    def vector(self, text: str) -> np.ndarray:
        out = np.zeros(self.dim, dtype=np.float64)
        for feature, weight in features(text).items():
            for index, sign in _slots(feature):
                out[index] += sign * weight
        norm = np.linalg.norm(out)
        if norm == 0:  # all slots cancelled out (practically never): any fixed unit vector will do
            out[_slots("empty")[0][0]] = 1.0
            norm = 1.0
        return (out / norm).astype(np.float32)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        self.texts += len(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self.vector(t) for t in texts])
