"""Which documents are held out of training: fixed by a hash of the key, so every run agrees."""

from __future__ import annotations

import hashlib


def is_held_out(document_key: str, fraction: float = 0.1) -> bool:
    """True for about `fraction` of the keys, the same ones on every machine and in every run
    (a SHA-256 of the key, not Python's salted hash); a held-out document is never trained on."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError("held-out fraction must be in [0, 1)")
    digest = hashlib.sha256(document_key.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction
