"""Plain text to structural blocks, whatever its line breaks.

Plain-text exports, e-mails and RFC-style files are hard-wrapped at ~72 columns. A line break there
is layout, not structure: a paragraph is a run of lines between blank lines, and its wrapped lines
are joined back into one paragraph. Lines keep their own shape only where the shape is the content:
list items (each item with its continuation lines), indented or fenced code, and tables (rows with
`|`, tabs or aligned columns). A heading is only what the layout marks as one: a setext underline
(`====`/`----`), or a line standing alone (between blank lines, or ended early in a wrapped block:
see `_units`) without sentence punctuation, followed by more text. A form feed starts a new page,
as in RFCs and line-printer reports.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from rag.types import Element

_BULLET = re.compile(r"^\s*(?:[-*+\u2022\u2023\u25e6\u2043\u2219]|\(?\d{1,3}[.)]|\(?[a-z]\))\s+\S")
_SETEXT = re.compile(r"^\s*(?:={3,}|-{3,})\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_COLUMNS = re.compile(r"\S(?: {3,}|\t)\S")
_HEADING_MAX_CHARS = 100
_SENTENCE_END = (".", "!", "?", ",", ";", ":")
_QUOTE = re.compile(r"^\s*>+\s?")
_HYPHEN_END = re.compile(r"[^\W\d_]-$")
_WRAP_MAX = 110  # longest line of hard-wrapped text (72-80 columns usually, 100 at most in practice)
_EARLY_BREAK = 0.5
_ENDS_SENTENCE = re.compile(r"[.!?][\"')\u201d]*(?:\[\d+\])*$")
_NEIGHBOURS = 5  # lines on each side that set the local wrap width


@dataclass(frozen=True, slots=True)
class Block:
    kind: str  # the Element category: Title, NarrativeText, ListItem, Table, CodeSnippet
    text: str
    page: int | None


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _is_table(lines: list[str]) -> bool:
    if len(lines) < 2:
        return False
    piped = sum(1 for ln in lines if ln.count("|") >= 2 or "\t" in ln.strip())
    columns = sum(1 for ln in lines if _COLUMNS.search(ln.strip()))
    return piped >= 0.8 * len(lines) or columns >= 0.8 * len(lines) and len(lines) >= 3


def _is_code(lines: list[str]) -> bool:
    return all(_indent(ln) >= 4 or ln.startswith("\t") for ln in lines)


def _join(lines: list[str]) -> str:
    """Wrapped lines of one paragraph: one line of text, single-spaced (padding and breaks are layout).
    A line ending in a hyphen after a letter was broken inside a compound word ("ITAM-" / "bearing"),
    which is joined back without a space."""
    out = ""
    for ln in lines:
        words = " ".join(ln.split())
        if not words:
            continue
        glue = "" if not out or _HYPHEN_END.search(out) and words[:1].isalnum() else " "
        out = f"{out}{glue}{words}" if out else words
    return out


def _units(lines: list[str]) -> list[tuple[list[str], bool]]:
    """Cut a block where a line ends early; each unit comes with whether its last line is short.

    A hard-wrapped paragraph fills every line to about the wrap width but its last, so a line under
    half the local wrap width (the longest wrapped line among its neighbours) was broken on purpose:
    the end of a paragraph, a heading above its text, a greeting, an address line. A line longer than
    any wrap width is a paragraph of its own (text that is not hard-wrapped, or only partly)."""
    lengths = [len(ln.rstrip()) for ln in lines]
    if len(lines) == 1:
        return [(lines, True)]
    units: list[tuple[list[str], bool]] = []
    current: list[str] = []
    for i, (ln, n) in enumerate(zip(lines, lengths, strict=True)):
        near = [m for m in lengths[max(0, i - _NEIGHBOURS) : i + _NEIGHBOURS + 1] if m <= _WRAP_MAX]
        width = max(near, default=n)
        short = n < width * _EARLY_BREAK and not _HYPHEN_END.search(ln.rstrip())
        if n > _WRAP_MAX:
            if current:
                units.append((current, False))
            units.append(([ln], False))
            current = []
            continue
        if (
            short
            and current
            and _ENDS_SENTENCE.search(current[-1].rstrip())
            and not ln.rstrip().endswith(_SENTENCE_END)
        ):
            units.append((current, False))  # the paragraph ended on a full line; this line stands alone
            current = []
        current.append(ln)
        if short:
            units.append((current, True))
            current = []
    if current:
        units.append((current, False))
    return units


def _paragraph_blocks(lines: list[str], page: int | None, last: bool) -> Iterator[Block]:
    if len(lines) == 2 and _SETEXT.match(lines[1]) and lines[0].strip():
        yield Block("Title", _join(lines[:1]), page)
        return
    if _FENCE.match(lines[0]) or _is_code(lines):
        yield Block("CodeSnippet", "\n".join(ln.rstrip() for ln in lines), page)
        return
    if _is_table(lines):
        yield Block("Table", "\n".join(ln.rstrip() for ln in lines), page)
        return
    if all(_QUOTE.match(ln) for ln in lines):  # an e-mail's quoted reply is a paragraph too
        lines = [_QUOTE.sub("", ln) for ln in lines]
    units = _units(lines)
    for n, (unit, set_apart) in enumerate(units):
        followed = n < len(units) - 1 or not last
        if len(unit) == 1 and set_apart and followed:
            text = _join(unit)
            if len(text) <= _HEADING_MAX_CHARS and not text.endswith(_SENTENCE_END) and not _BULLET.match(text):
                yield Block("Title", text, page)
                continue
        yield from _items(unit, page)


def _items(lines: list[str], page: int | None) -> Iterator[Block]:
    # Lines before the first bullet are a paragraph (an introduction); each bullet opens an item
    # and the lines following it continue it. A wrapped sentence can put "- 3" or "2." at a line
    # start: a bullet opens an item only at the start, inside a list, or after a line ending with ":".
    current: list[str] = []
    kind = "NarrativeText"
    for ln in lines:
        opens = not current or kind == "ListItem" or current[-1].rstrip().endswith(":")
        if opens and _BULLET.match(ln):
            if current:
                yield Block(kind, _join(current), page)
            current, kind = [ln], "ListItem"
        else:
            current.append(ln)
    if current:
        yield Block(kind, _join(current), page)


def text_blocks(text: str) -> list[Block]:
    """The blocks of a plain text in reading order (pages only when the text has form feeds)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    paged = "\f" in text
    raw: list[tuple[list[str], int | None]] = []
    for number, page_text in enumerate(text.split("\f"), start=1):
        page = number if paged else None
        current: list[str] = []
        fenced = False
        for line in page_text.split("\n"):
            if _FENCE.match(line):
                if fenced:  # the closing fence ends the code block, blank lines inside included
                    current.append(line)
                    raw.append((current, page))
                    current, fenced = [], False
                    continue
                if current:
                    raw.append((current, page))
                current, fenced = [line], True
                continue
            if fenced:
                current.append(line)
            elif line.strip():
                current.append(line)
            elif current:
                raw.append((current, page))
                current = []
        if current:
            raw.append((current, page))
    blocks: list[Block] = []
    for i, (lines, page) in enumerate(raw):
        blocks.extend(b for b in _paragraph_blocks(lines, page, last=i == len(raw) - 1) if b.text.strip())
    return blocks


def text_elements(text: str) -> list[Element]:
    return [Element(text=b.text, category=b.kind, page=b.page) for b in text_blocks(text)]


def regroup(text: str) -> str:
    """`text` with one line per paragraph or list item and blank lines between blocks.

    For parsers (unstructured's e-mail body) that treat every newline as a paragraph break: given
    this, they see whole paragraphs. Code and table lines stay lines."""
    return "\n\n".join(b.text for b in text_blocks(text))
