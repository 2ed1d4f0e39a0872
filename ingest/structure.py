"""Parser elements to the document's real structure: headings only where the format marks them,
and paragraphs that a parser cut at line ends joined back.

unstructured calls a short line a `Title` when nothing else tells it what the line is. Formats with
heading markup (Markdown `#`, HTML `<h*>`, DOCX/ODT heading styles, slide titles, pandoc formats)
map only that markup to `Title`, so their titles are kept. E-mail bodies have no heading markup, so
a "title" there is a short line (a greeting, a signature) and becomes text. In PDFs a title found by
layout is kept unless it is visibly the first half of a sentence that continues in the next element
(a line the parser cut off); then the two are joined. Where the PDF's fonts are readable
(`pdf_heading_lines`), its layout decides instead: a line set larger than the body text (or wholly in
bold) is a heading, whatever unstructured guessed, and a short line in the body font is not.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from statistics import median

from rag.types import Element

# Formats whose headings are markup, not guesses (checked on unstructured 0.27: short <p> and
# Normal-style paragraphs come out as UncategorizedText/NarrativeText there, never Title).
MARKUP_HEADINGS = {
    ".md",
    ".markdown",
    ".html",
    ".htm",
    ".xml",
    ".docx",
    ".doc",
    ".odt",
    ".pptx",
    ".ppt",
    ".epub",
    ".rst",
    ".org",
    ".rtf",
    ".xlsx",
    ".xls",
    ".csv",
    ".tsv",
    ".json",
}
_TEXTUAL = {"NarrativeText", "UncategorizedText", "Text", "Title"}
_ENDS_SENTENCE = (".", "!", "?", ":", ";", '"', "'", ")", "]", "\u201d")


def _continues(previous: Element, nxt: Element) -> bool:
    """`nxt` is the rest of `previous`'s sentence: a line break the parser took for a paragraph break."""
    if previous.category not in _TEXTUAL or nxt.category not in _TEXTUAL or previous.page != nxt.page:
        return False
    head = nxt.text.lstrip()[:1]
    return bool(head) and head.islower() and not previous.text.rstrip().endswith(_ENDS_SENTENCE)


HEADING_SIZE_RATIO = 1.15  # a heading's font is at least this much larger than the body's
HEADING_MAX_WORDS = 20


def _key(text: str) -> str:
    return " ".join(text.split())


def pdf_heading_lines(path: Path) -> frozenset[str] | None:
    """The lines of a PDF its layout marks as headings: set in a font at least 1.15x the body's (the
    size most characters have) or wholly in bold, and at most 20 words. None when the fonts cannot be
    read (then unstructured's guess stands)."""
    try:
        from pdfminer.high_level import extract_pages
        from pdfminer.layout import LTChar, LTTextContainer, LTTextLine

        lines: list[tuple[str, float, bool]] = []
        weight: Counter[float] = Counter()
        for page in extract_pages(str(path)):
            for box in page:
                if not isinstance(box, LTTextContainer):
                    continue
                for line in box:
                    if not isinstance(line, LTTextLine):
                        continue
                    chars = [c for c in line if isinstance(c, LTChar) and c.get_text().strip()]
                    if not chars:
                        continue
                    size = round(median(c.size for c in chars), 1)
                    weight[size] += len(chars)
                    bold = all("bold" in c.fontname.lower() for c in chars)
                    lines.append((_key(line.get_text()), size, bold))
    except Exception:  # noqa: BLE001 - fonts are a hint; a PDF pdfminer cannot lay out keeps the parser's guess
        return None
    if not weight:
        return None
    body = weight.most_common(1)[0][0]
    return frozenset(
        text
        for text, size, bold in lines
        if text
        and len(text.split()) <= HEADING_MAX_WORDS
        and (size >= HEADING_SIZE_RATIO * body or (bold and size >= body))
    )


def _split_headings(element: Element, headings: frozenset[str], longest_first: Sequence[str]) -> list[Element]:
    """An element the parser merged from a body line and a heading line ("Short line Methods") cut
    back into the two, the heading a `Title`; every other element a `Title` only if it is a heading."""
    key = _key(element.text)
    if key in headings:
        return [Element(text=element.text, category="Title", page=element.page)]
    category = "NarrativeText" if element.category == "Title" else element.category
    if category not in _TEXTUAL:
        return [Element(text=element.text, category=category, page=element.page)]
    # a plain substring test first: a long PDF has thousands of headings and elements, and a regular
    # expression per pair (each compiled anew past re's cache) made that quadratic in compilations
    for heading in (h for h in longest_first if h in key):
        match = re.search(rf"(?:^|\s){re.escape(heading)}(?:\s|$)", key)
        if match is None or match.group().strip() == key:
            continue
        before, after = key[: match.start()].strip(), key[match.end() :].strip()
        parts = [Element(text=before, category=category, page=element.page)] if before else []
        parts.append(Element(text=heading, category="Title", page=element.page))
        if after:
            parts += _split_headings(Element(text=after, category=category, page=element.page), headings, longest_first)
        return parts
    return [Element(text=element.text, category=category, page=element.page)]


def normalise(elements: Sequence[Element], suffix: str, pdf_headings: frozenset[str] | None = None) -> list[Element]:
    """Elements of one document with guessed headings demoted and cut paragraphs joined. `pdf_headings`
    (a PDF's `pdf_heading_lines`) makes its layout the only judge of what is a heading."""
    trust_titles = suffix in MARKUP_HEADINGS
    if pdf_headings is not None:
        longest_first = sorted(pdf_headings, key=len, reverse=True)
        elements = [part for element in elements for part in _split_headings(element, pdf_headings, longest_first)]
    out: list[Element] = []
    for element in elements:
        category = element.category
        if category == "Title" and suffix in {".eml", ".msg"}:
            category = "NarrativeText"
        element = Element(text=element.text, category=category, page=element.page)
        laid_out = pdf_headings is not None and "Title" in (element.category, out[-1].category if out else "")
        if out and not trust_titles and not laid_out and _continues(out[-1], element):
            previous = out[-1]
            joined = "NarrativeText" if previous.category == "Title" else previous.category
            out[-1] = Element(text=f"{previous.text} {element.text}", category=joined, page=previous.page)
            continue
        out.append(element)
    return out
