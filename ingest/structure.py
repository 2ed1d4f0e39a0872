"""Parser elements to the document's real structure: headings only where the format marks them,
and paragraphs that a parser cut at line ends joined back.

unstructured calls a short line a `Title` when nothing else tells it what the line is. Formats with
heading markup (Markdown `#`, HTML `<h*>`, DOCX/ODT heading styles, slide titles, pandoc formats)
map only that markup to `Title`, so their titles are kept. E-mail bodies have no heading markup, so
a "title" there is a short line (a greeting, a signature) and becomes text. In PDFs a title found by
layout is kept unless it is visibly the first half of a sentence that continues in the next element
(a line the parser cut off); then the two are joined.
"""

from __future__ import annotations

from collections.abc import Sequence

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


def normalise(elements: Sequence[Element], suffix: str) -> list[Element]:
    """Elements of one document with guessed headings demoted and cut paragraphs joined."""
    trust_titles = suffix in MARKUP_HEADINGS
    out: list[Element] = []
    for element in elements:
        category = element.category
        if category == "Title" and suffix in {".eml", ".msg"}:
            category = "NarrativeText"
        element = Element(text=element.text, category=category, page=element.page)
        if out and not trust_titles and _continues(out[-1], element):
            previous = out[-1]
            joined = "NarrativeText" if previous.category == "Title" else previous.category
            out[-1] = Element(text=f"{previous.text} {element.text}", category=joined, page=previous.page)
            continue
        out.append(element)
    return out
