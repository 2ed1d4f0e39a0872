"""Files to structural elements with `unstructured`, offline, and each file's failure kept to itself."""

from __future__ import annotations

import os
import re
import shutil
from html import unescape
from pathlib import Path

from ingest import structure
from ingest.plaintext import regroup, text_elements
from rag.errors import ParseError
from rag.types import Element

# unstructured phones home for analytics and fetches models unless told not to.
for _var, _value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "UNSTRUCTURED_DISABLE_NOTICE": "1",
    "DO_NOT_TRACK": "true",
    "SCARF_NO_ANALYTICS": "true",
}.items():
    os.environ.setdefault(_var, _value)

SUPPORTED_SUFFIXES = {
    ".pdf",
    ".docx",
    ".doc",
    ".pptx",
    ".ppt",
    ".xlsx",
    ".xls",
    ".csv",
    ".tsv",
    ".html",
    ".htm",
    ".xml",
    ".md",
    ".markdown",
    ".txt",
    ".text",
    ".log",
    ".rst",
    ".org",
    ".eml",
    ".msg",
    ".odt",
    ".rtf",
    ".epub",
    ".json",
}
_TEXT_SUFFIXES = {
    ".txt",
    ".text",
    ".log",
    ".md",
    ".markdown",
    ".csv",
    ".tsv",
    ".rst",
    ".org",
    ".json",
    ".html",
    ".htm",
    ".xml",
}
# Running headers, footers and page numbers repeat on every page and would drown real text.
_SKIPPED_CATEGORIES = {"Header", "Footer", "PageNumber", "PageBreak", "Image", "FigureCaption_empty"}

# NUL and other C0 controls come out of odd PDFs; PostgreSQL text cannot hold NUL, nobody can read the rest.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

_ROW = re.compile(r"<tr[^>]*>(.*?)</tr>", re.S | re.I)
_CELL = re.compile(r"<t[dh][^>]*>(.*?)</t[dh]>", re.S | re.I)
_TAG = re.compile(r"<[^>]+>")
# Parsed by ingest.plaintext from their own layout; every other format by unstructured.
PLAIN_TEXT_SUFFIXES = {".txt", ".text", ".log"}

_ready = False


def _prepare() -> None:
    global _ready
    if not _ready:
        from ingest import offline_nlp

        offline_nlp.install()
        _ready = True


def ocr_available() -> bool:
    return bool(shutil.which("tesseract") and shutil.which("pdftoppm"))


def parse_file(path: Path, *, max_bytes: int, ocr: str = "auto") -> list[Element]:
    """Elements with text, in reading order. Raises ParseError with a one-line reason."""
    _prepare()
    size = path.stat().st_size
    if size == 0:
        raise ParseError("empty file")
    if size > max_bytes:
        raise ParseError(f"file too large: {size / 2**20:.1f} MiB > limit {max_bytes / 2**20:.1f} MiB")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise ParseError(f"unsupported file type '{suffix or 'no extension'}'")
    if suffix in _TEXT_SUFFIXES - {".html", ".htm", ".xml"}:
        _refuse_binary(path)
    if suffix == ".pdf":
        _refuse_encrypted_pdf(path)

    if suffix in PLAIN_TEXT_SUFFIXES:
        return _plain_text(path)

    from unstructured.file_utils.model import FileType
    from unstructured.partition.auto import partition

    # E-mail bodies go through unstructured's plain-text partitioner, which takes every newline of a
    # 72-column body for a paragraph break; regrouped first, it sees whole paragraphs.
    extra = {"paragraph_grouper": regroup} if suffix in {".eml", ".msg"} else {}
    # Sniffing the type with libmagic costs more than parsing a small text file; trust these suffixes.
    content_type = FileType.from_extension(suffix).mime_type if suffix in _TEXT_SUFFIXES else None
    try:
        try:
            elements = partition(
                filename=str(path), strategy="fast", languages=["eng"], content_type=content_type, **extra
            )
        except ValueError:
            if suffix not in {".eml", ".msg"}:
                raise
            # An attachment (typically an image) the fast strategy cannot read: keep the message itself.
            elements = partition(
                filename=str(path), strategy="fast", languages=["eng"], process_attachments=False, **extra
            )
        if suffix == ".pdf" and not _has_text(elements) and ocr == "auto" and ocr_available():
            elements = partition(filename=str(path), strategy="ocr_only", languages=["eng"])
    except ParseError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parser failure is this file's failure only
        raise ParseError(_describe(exc)) from None

    # A PDF's headings are the lines its fonts set apart (issue 18), not the short lines unstructured guesses.
    headings = structure.pdf_heading_lines(path) if suffix == ".pdf" else None
    result = []
    for e in elements:
        category = getattr(e, "category", "Text")
        text = _table_text(e) if category == "Table" else getattr(e, "text", "") or ""
        text = _CONTROL.sub("", text).strip()
        if text and category in _SKIPPED_CATEGORIES and headings and " ".join(text.split()) in headings:
            category = "Title"  # a title at the top of a page is not a running header when its font says so
        if not text or category in _SKIPPED_CATEGORIES:
            continue
        result.append(Element(text=text, category=category, page=getattr(e.metadata, "page_number", None)))
    result = structure.normalise(result, suffix, headings)
    if not result:
        hint = (
            "" if ocr_available() or suffix != ".pdf" else " (scanned? install tesseract-ocr and poppler-utils for OCR)"
        )
        raise ParseError("no extractable text" + hint)
    return result


def _plain_text(path: Path) -> list[Element]:
    """Plain text is split by its own layout (ingest.plaintext), not one element per line."""
    from unstructured.file_utils.encoding import read_txt_file

    try:
        _, text = read_txt_file(filename=str(path))
    except Exception as exc:  # noqa: BLE001 - an undecodable file is this file's failure only
        raise ParseError(_describe(exc)) from None
    result = [
        Element(text=t, category=e.category, page=e.page)
        for e in text_elements(text)
        if (t := _CONTROL.sub("", e.text).strip())
    ]
    if not result:
        raise ParseError("no extractable text")
    return result


def _table_text(element) -> str:
    """A table as rows of cells (`a | b` per line) when the parser kept its structure, so it keeps its shape."""
    html = getattr(element.metadata, "text_as_html", None)
    if not html:
        return getattr(element, "text", "") or ""
    rows = []
    for row in _ROW.findall(html):
        cells = [" ".join(unescape(_TAG.sub(" ", c)).split()) for c in _CELL.findall(row)]
        if any(cells):
            rows.append(" | ".join(cells))
    return "\n".join(rows) or getattr(element, "text", "") or ""


def _has_text(elements) -> bool:
    return any((getattr(e, "text", "") or "").strip() for e in elements)


def _refuse_binary(path: Path) -> None:
    with open(path, "rb") as f:
        head = f.read(8192)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return  # UTF-16 text
    controls = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13))
    if controls > len(head) // 10:  # a stray control byte is noise; one in ten is not text
        raise ParseError("binary content in a text file")


def _refuse_encrypted_pdf(path: Path) -> None:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted and not reader.decrypt(""):
            raise ParseError("encrypted PDF: a password is needed to read it")
    except ParseError:
        raise
    except (PdfReadError, ValueError, OSError, KeyError) as exc:
        raise ParseError(f"corrupt PDF: {_describe(exc)}") from None
    except Exception:  # noqa: BLE001 - let the real parser have its say on odd but readable files
        return


def _describe(exc: BaseException) -> str:
    message = " ".join(str(exc).split())[:300]
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
