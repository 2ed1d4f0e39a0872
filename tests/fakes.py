"""Deterministic fakes for unit tests of logic (never for proving a feature works with real models)."""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

import numpy as np

_WORD = re.compile(r"\w+")


class FakeEmbedder:
    """A hashed bag of words: texts sharing words are close, the same text gives the same vector in
    every process (crc32, not Python's randomised hash). Counts calls like a spy would. Same window
    and dimension as the packaged all-MiniLM-L6-v2, so chunking is unchanged."""

    def __init__(self, dim: int = 384, max_tokens: int = 254) -> None:
        self.dim = dim
        self.max_tokens = max_tokens
        self.calls = 0
        self.texts = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        self.texts += len(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                h = zlib.crc32(word.encode())
                out[row, h % self.dim] += 1.0 if (h >> 16) & 1 else -1.0
            out[row, zlib.crc32(b"\0bias") % self.dim] += 0.01  # an empty text still has a direction
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out
