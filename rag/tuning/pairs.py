"""Pseudo-queries from a chunk's own text (no labels): a sentence or the heading asks for the rest.

Inverse cloze: one sentence (or the title line) is the query and the chunk without it is the
positive, so the model must match a statement to the passage it belongs to without the words they
share verbatim. The choice of sentence is a hash of (seed, epoch, document, chunk), so training and
the held-out evaluation build the same pairs on every run.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

MIN_QUERY_WORDS = 4
MAX_QUERY_WORDS = 64
MIN_REST_WORDS = 12

# A sentence ends at . ! ? before a capital; in lower-cased text (MED), at a detached " . " or after a
# word of three letters or more (so "i.v." and "hr." do not end one).
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])|(?<=\s[.!?])\s+|(?<=[a-z]{3}[.!?])\s+(?=[a-z])")
_SPACES = re.compile(r"[ \t\r\f\v]+")


@dataclass(frozen=True)
class Pair:
    query: str
    positive: str


def _normalise(text: str) -> tuple[str | None, str]:
    """(title line or None, body as one line): hard-wrapped text is joined, paragraphs kept apart."""
    text = text.strip()
    head, sep, rest = text.partition("\n\n")  # a heading stands alone; a hard-wrapped first line does not
    title = None
    head_words = head.split()
    if (
        sep
        and rest.strip()
        and "\n" not in head.strip()
        and 2 <= len(head_words) <= 30
        and not head.rstrip().endswith((".", ":", ";", ","))
    ):
        title, text = " ".join(head_words), rest
    body = " ".join(_SPACES.sub(" ", line).strip() for line in text.splitlines() if line.strip())
    return title, body


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def _pick(key: str, n: int) -> int:
    return int.from_bytes(hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()[:8], "big") % n


def make_pair(document_key: str, chunk_id: int, text: str, seed: int, epoch: int = 0) -> Pair | None:
    """One (query, positive) for this chunk, or None when it has too little text to cut in two."""
    title, body = _normalise(text)
    parts = sentences(body)
    candidates: list[tuple[str, str]] = []
    for i, s in enumerate(parts):
        if MIN_QUERY_WORDS <= len(s.split()) <= MAX_QUERY_WORDS:
            rest = " ".join(parts[:i] + parts[i + 1 :])
            candidates.append((s, f"{title}\n{rest}" if title else rest))
    if title and len(title.split()) >= MIN_QUERY_WORDS:
        candidates.append((title, body))
    candidates = [(q, p) for q, p in candidates if len(p.split()) >= MIN_REST_WORDS]
    if not candidates:
        return None
    query, positive = candidates[_pick(f"{seed}\x00{epoch}\x00{document_key}\x00{chunk_id}", len(candidates))]
    return Pair(query, positive)
