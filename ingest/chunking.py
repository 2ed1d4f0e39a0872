"""Structure-aware chunking: sections start at titles, chunks fit the embedder's token window.

Every chunk is an exact span of the document's extracted text, so citations can point at it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from rag.types import ChunkDraft, Element

SEPARATOR = "\n\n"
# A chunk smaller than this is not closed at a heading or a page break: a lone heading, or a one-line
# attribution misread as a heading, is too small to retrieve on its own and belongs with what follows.
MIN_CHUNK_TOKENS = 32


class TokenCounter(Protocol):
    def token_spans(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]: ...


@dataclass(frozen=True, slots=True)
class _Piece:
    start: int
    end: int
    tokens: int
    page: int | None


def extracted_text(elements: Sequence[Element]) -> str:
    return SEPARATOR.join(e.text for e in elements)


def chunk_elements(
    elements: Sequence[Element],
    tokenizer: TokenCounter,
    max_tokens: int,
    overlap_tokens: int = 0,
    min_tokens: int = MIN_CHUNK_TOKENS,
) -> list[ChunkDraft]:
    """Pack consecutive elements of a section into chunks of at most `max_tokens` tokens."""
    if max_tokens < 8:
        raise ValueError("max_tokens must be at least 8")
    overlap_tokens = min(overlap_tokens, max_tokens // 4)
    min_tokens = min(min_tokens, max_tokens // 2)
    text = extracted_text(elements)
    spans = tokenizer.token_spans([e.text for e in elements])
    packer = _Packer(text)
    pos = 0
    for element, offsets in zip(elements, spans, strict=True):
        n = len(offsets)
        start = pos
        pos += len(element.text) + len(SEPARATOR)
        if n > max_tokens:
            # Larger than the window: token-exact windows; the first tops up a small open chunk
            # (a heading), the last stays open for what follows.
            if packer.size >= min_tokens:
                packer.close()
            first, budget = 0, max_tokens - packer.size
            while True:
                window = offsets[first : first + budget]
                packer.add(_Piece(start + window[0][0], start + window[-1][1], len(window), element.page))
                if first + budget >= len(offsets):
                    break
                packer.close()
                first += max(1, budget - overlap_tokens)
                budget = max_tokens
            continue
        title = element.text.strip()[:1000] if element.category == "Title" else None
        if title is not None:
            if packer.size >= min_tokens or packer.size + n > max_tokens:
                packer.close()
            packer.section = title  # the chunk is filed under the heading that governs its text
        elif packer.pieces:
            page_break = element.page != packer.pieces[-1].page and packer.size >= min_tokens
            if packer.size + n > max_tokens or page_break:
                packer.close()
        packer.add(_Piece(start, start + len(element.text), n, element.page))
    packer.close()
    kept = [c for c in packer.chunks if c.text.strip()]
    for ordinal, chunk in enumerate(kept):
        chunk.ordinal = ordinal
    return kept


class _Packer:
    """The chunk being filled, and the chunks closed so far."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.section: str | None = None
        self.pieces: list[_Piece] = []
        self.size = 0
        self.chunks: list[ChunkDraft] = []

    def add(self, piece: _Piece) -> None:
        self.pieces.append(piece)
        self.size += piece.tokens

    def close(self) -> None:
        if not self.pieces:
            return
        start, end = self.pieces[0].start, self.pieces[-1].end
        self.chunks.append(
            ChunkDraft(
                ordinal=len(self.chunks),
                text=self.text[start:end],
                section=self.section,
                pages=sorted({p.page for p in self.pieces if p.page is not None}),
                char_start=start,
                char_end=end,
                token_count=self.size,
            )
        )
        self.pieces, self.size = [], 0
