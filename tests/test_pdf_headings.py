"""PDF headings come from the layout (font size, bold), not from a line being short (issue 18).

The PDFs are real files written here with pypdf (a page content stream in Helvetica), parsed by the
product's own path: unstructured for the elements, pdfminer for the fonts."""

from pathlib import Path

from pypdf import PdfWriter
from pypdf.generic import DictionaryObject, NameObject, StreamObject

from ingest.parsing import parse_file
from ingest.structure import normalise
from rag.types import Element


def write_pdf(path: Path, lines: list[tuple[str, float, str]]) -> Path:
    """One page; `lines` are (font, size, text) from the top down, font "F1" Helvetica or "F2" bold."""
    writer = PdfWriter()
    page = writer.add_blank_page(612, 792)
    fonts = DictionaryObject()
    for name, base in (("/F1", "/Helvetica"), ("/F2", "/Helvetica-Bold")):
        font = DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Font"),
                NameObject("/Subtype"): NameObject("/Type1"),
                NameObject("/BaseFont"): NameObject(base),
            }
        )
        fonts[NameObject(name)] = writer._add_object(font)
    page[NameObject("/Resources")] = DictionaryObject({NameObject("/Font"): fonts})
    y, ops = 740.0, []
    for font, size, text in lines:
        ops.append(f"BT /{font} {size} Tf 72 {y:.0f} Td ({text}) Tj ET")
        y -= size * 1.6 + (8 if size > 12 else 0)
    stream = StreamObject()
    stream.set_data("\n".join(ops).encode("latin-1"))
    page[NameObject("/Contents")] = writer._add_object(stream)
    with open(path, "wb") as f:
        writer.write(f)
    return path


def test_pdf_headings_follow_font_size_not_line_length(tmp_path):
    pdf = write_pdf(
        tmp_path / "report.pdf",
        [
            ("F1", 18, "Results of the trial"),
            ("F1", 10, "The trial enrolled 120 patients over two years and"),
            ("F1", 10, "followed them for a further six months after that."),
            ("F1", 10, "Short line"),
            ("F1", 14, "Methods"),
            ("F1", 10, "Patients were randomised to two arms of equal size."),
            ("F2", 10, "Adverse events"),
            ("F1", 10, "None were serious; two patients left the trial early."),
            ("F1", 10, "Summary"),
        ],
    )
    got = [(e.category, e.text) for e in parse_file(pdf, max_bytes=10**7)]
    assert got == [
        ("Title", "Results of the trial"),  # 18 pt at the top of the page: kept, not dropped as a running header
        (
            "NarrativeText",
            "The trial enrolled 120 patients over two years and followed them for a further six months after that.",
        ),
        ("NarrativeText", "Short line"),  # short, but in the body font: not a heading
        ("Title", "Methods"),  # 14 pt, although the parser merged it with the line above
        ("NarrativeText", "Patients were randomised to two arms of equal size."),
        ("Title", "Adverse events"),  # bold at body size
        ("NarrativeText", "None were serious; two patients left the trial early."),
        ("NarrativeText", "Summary"),
    ]


def test_without_font_information_the_parsers_guess_stands():
    elements = [Element("Introduction", "Title", 1), Element("Some text here.", "NarrativeText", 1)]
    assert normalise(elements, ".pdf") == elements  # no layout known: unchanged
    assert normalise(elements, ".pdf", frozenset()) == [
        Element("Introduction", "NarrativeText", 1),  # fonts read, nothing set apart: no headings
        Element("Some text here.", "NarrativeText", 1),
    ]
