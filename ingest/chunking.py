"""Structure-aware chunking: sections start at titles, chunks fit the embedder's token window.

Every chunk is an exact span of the document's extracted text, so citations can point at it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from rag.types import ChunkDraft, Element

SEPARATOR = "\n\n"
# The stated minimum: no chunk is smaller unless its whole document is. A lone heading or a one-line
# attribution is too small to retrieve on its own and belongs with what follows; a small tail joins
# (or is re-cut with) the chunk before it.
MIN_CHUNK_TOKENS = 32
# Stored with each document: a document chunked by another version is re-chunked on the next ingest
# (and re-embedded only where its chunks changed). 1: main until issue 18; 2: layout-independent
# paragraphs, the minimum enforced at the end of a document.
CHUNKER_VERSION = 2


class TokenCounter(Protocol):
    def token_spans(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]: ...


@dataclass(frozen=True, slots=True)
class _Token:
    start: int  # character span in the extracted text
    end: int
    page: int | None
    element: int  # which element it belongs to: chunks are re-cut at element boundaries first


def extracted_text(elements: Sequence[Element]) -> str:
    return SEPARATOR.join(e.text for e in elements)


def chunk_elements(
    elements: Sequence[Element],
    tokenizer: TokenCounter,
    max_tokens: int,
    overlap_tokens: int = 0,
    min_tokens: int = MIN_CHUNK_TOKENS,
) -> list[ChunkDraft]:
    """Pack consecutive elements of a section into chunks of at most `max_tokens` tokens and at
    least `min_tokens` (unless the whole document is smaller)."""
    if max_tokens < 8:
        raise ValueError("max_tokens must be at least 8")
    overlap_tokens = min(overlap_tokens, max_tokens // 4)
    min_tokens = min(min_tokens, max_tokens // 2)
    text = extracted_text(elements)
    spans = tokenizer.token_spans([e.text for e in elements])
    packer = _Packer(text)
    pos = 0
    for index, (element, offsets) in enumerate(zip(elements, spans, strict=True)):
        start = pos
        pos += len(element.text) + len(SEPARATOR)
        tokens = [_Token(start + s, start + e, element.page, index) for s, e in offsets]
        if not tokens:
            continue
        if element.category == "Title":
            if packer.size >= min_tokens:
                packer.close()
            packer.section = element.text.strip()[:1000]  # the chunk is filed under the heading that governs it
        elif packer.tokens and element.page != packer.tokens[-1].page and packer.size >= min_tokens:
            packer.close()
        if packer.size + len(tokens) <= max_tokens:
            packer.add(tokens)
            continue
        if packer.size >= min_tokens:
            packer.close()
        # Does not fit: token-exact windows, the first topping up a small open chunk (a heading), the
        # last left open for what follows.
        first, budget = 0, max_tokens - packer.size
        while len(tokens) - first > budget:
            packer.add(tokens[first : first + budget])
            packer.close()
            first += max(1, budget - overlap_tokens)
            budget = max_tokens
        packer.add(tokens[first:])
    packer.close()
    pieces = _no_small_chunks(packer.chunks, min_tokens, max_tokens)
    return [_draft(text, ordinal, section, tokens) for ordinal, (section, tokens) in enumerate(pieces)]


def _no_small_chunks(
    chunks: list[tuple[str | None, list[_Token]]], min_tokens: int, max_tokens: int
) -> list[tuple[str | None, list[_Token]]]:
    """A chunk under `min_tokens` (only a document's last can be) joins its predecessor when both fit
    the window; otherwise the two are re-cut, at an element boundary where one leaves both at least
    `min_tokens`, else at a token."""
    out: list[tuple[str | None, list[_Token]]] = []
    for section, tokens in chunks:
        if not out or len(tokens) >= min_tokens:
            out.append((section, tokens))
            continue
        prev_section, prev = out[-1]
        joined = prev + [t for t in tokens if t.start >= prev[-1].end]  # split windows overlap
        if len(joined) <= max_tokens:
            out[-1] = (prev_section, joined)
            continue
        cuts = [
            c
            for c in range(min_tokens, len(joined) - min_tokens + 1)
            if joined[c - 1].element != joined[c].element and c <= max_tokens and len(joined) - c <= max_tokens
        ]
        cut = cuts[-1] if cuts else len(joined) - min_tokens
        out[-1] = (prev_section, joined[:cut])
        out.append((section, joined[cut:]))
    return out


def _draft(text: str, ordinal: int, section: str | None, tokens: list[_Token]) -> ChunkDraft:
    start, end = tokens[0].start, tokens[-1].end
    return ChunkDraft(
        ordinal=ordinal,
        text=text[start:end],
        section=section,
        pages=sorted({t.page for t in tokens if t.page is not None}),
        char_start=start,
        char_end=end,
        token_count=len(tokens),
    )


class _Packer:
    """The chunk being filled, and the chunks closed so far (section, tokens)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.section: str | None = None
        self.tokens: list[_Token] = []
        self.chunks: list[tuple[str | None, list[_Token]]] = []

    @property
    def size(self) -> int:
        return len(self.tokens)

    def add(self, tokens: list[_Token]) -> None:
        self.tokens.extend(tokens)

    def close(self) -> None:
        if self.tokens:
            self.chunks.append((self.section, self.tokens))
        self.tokens = []
