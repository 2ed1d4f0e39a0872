"""Sentence splitting and stemmed content words: what grounding and extractive answers compare."""

from __future__ import annotations

import re
from functools import lru_cache

import Stemmer

_STEMMER = Stemmer.Stemmer("english")
_WORD = re.compile(r"[a-z0-9]+(?:[.,][0-9]+)*", re.IGNORECASE)
_NUMBER = re.compile(r"^\d+(?:[.,]\d+)*$")
# A sentence ends at . ! ? (optionally followed by citations like [1][2]) before whitespace and a
# capital, digit, quote or bracket; also at blank lines and list markers.
_SENTENCE_END = re.compile(
    r"(?<=[.!?])((?:\s*\[\d+(?:\s*,\s*\d+)*\])*)\s+(?=[\"'(\[A-Z0-9*\-•])|\n\s*\n|\n(?=\s*(?:[-*•]|\d+[.)])\s)"
)
STOPWORDS = frozenset(
    """
a about above after again against all also am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has have having
he her here hers herself him himself his how i if in into is it its itself just me more most my myself
of off on once only or other our ours ourselves out over own same she should so some such than
that the their theirs them themselves then there these they this those through to too under until up very
was we were what when where which while who whom why will with would you your yours yourself yourselves
may might must shall many much per via etc get gets got one ones use used using
""".split()
)


def split_sentences(text: str) -> list[str]:
    """Sentences with their trailing citations kept attached."""
    pieces: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        end = match.start() + len(match.group(1) or "")
        pieces.append(text[start:end])
        start = match.end()
    pieces.append(text[start:])
    return [p.strip() for p in pieces if p and p.strip()]


@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    return _STEMMER.stemWord(word)


def content_words(text: str) -> list[str]:
    """Lower-cased, stemmed words without stopwords; numbers are kept verbatim."""
    out = []
    for raw in _WORD.findall(text.lower()):
        if raw in STOPWORDS:
            continue
        if _NUMBER.match(raw):
            out.append(raw.replace(",", ""))
        elif len(raw) > 1:
            out.append(_stem(raw))
    return out


def numbers_in(text: str) -> set[str]:
    return {w.replace(",", "") for w in _WORD.findall(text) if _NUMBER.match(w)}
