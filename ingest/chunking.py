"""Structure-aware chunking: sections start at titles, chunks fit the embedder's token window.

Every chunk is an exact span of the document's extracted text, so citations can point at it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

from rag.types import ChunkDraft, Element

SEPARATOR = "\n\n"
# A chunk smaller than this is not closed at a heading or a page break: a lone heading, or a one-line
# attribution misread as a heading, is too small to retrieve on its own and belongs with what follows.
MIN_CHUNK_TOKENS = 32


class TokenCounter(Protocol):
    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...

    def token_offsets(self, text: str) -> list[tuple[int, int]]: ...


@dataclass(frozen=True, slots=True)
class _Piece:
    start: int
    end: int
    tokens: int
    page: int | None
    title: str | None  # set when the piece is a heading that opens a section


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
    counts = tokenizer.count_tokens([e.text for e in elements])
    pieces: list[_Piece] = []
    pos = 0
    for element, n in zip(elements, counts):
        start, end = pos, pos + len(element.text)
        pos = end + len(SEPARATOR)
        title = element.text.strip()[:1000] if element.category == "Title" else None
        if n <= max_tokens:
            pieces.append(_Piece(start, end, n, element.page, title))
            continue
        # One element larger than the window: token-exact sliding windows over it.
        offsets = tokenizer.token_offsets(element.text)
        step = max_tokens - overlap_tokens
        for first in range(0, len(offsets), step):
            window = offsets[first : first + max_tokens]
            pieces.append(_Piece(start + window[0][0], start + window[-1][1], len(window), element.page, None))
            if first + max_tokens >= len(offsets):
                break

    chunks: list[ChunkDraft] = []
    text = extracted_text(elements)
    section: str | None = None
    current: list[_Piece] = []

    def close() -> None:
        if not current:
            return
        start, end = current[0].start, current[-1].end
        pages = sorted({p.page for p in current if p.page is not None})
        chunks.append(
            ChunkDraft(
                ordinal=len(chunks),
                text=text[start:end],
                section=section,
                pages=pages,
                char_start=start,
                char_end=end,
                token_count=sum(p.tokens for p in current),
            )
        )
        current.clear()

    size = 0
    for piece in pieces:
        if piece.title is not None:
            if size >= min_tokens or size + piece.tokens > max_tokens:
                close()
                size = 0
            section = piece.title  # the chunk is filed under the heading that governs its text
        elif current:
            page_break = piece.page != current[-1].page and size >= min_tokens
            if size + piece.tokens > max_tokens or page_break:
                close()
                size = 0
        current.append(piece)
        size += piece.tokens
    close()
    kept = [c for c in chunks if c.text.strip()]
    for ordinal, chunk in enumerate(kept):
        chunk.ordinal = ordinal
    return kept

