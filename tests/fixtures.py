"""Documents of our own, written by the tests into a temporary folder: every format the parser
supports that can be produced here (all but Outlook .msg), corrupt files, a PDF whose parse takes
minutes, and multi-file corpora. The text is ours (fictional Northwind Labs), generated from a seed,
so a new user's clone tests all of this without the third-party documents in ../shared.
"""

from __future__ import annotations

import email.policy
import random
import struct
import zlib
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

# ---------------------------------------------------------------------------------------------------------------
# text

_SUBJECTS = (
    "The travel desk|Every new employee|The security team|Our Lisbon office|The Tallinn office|"
    "A team lead|The payroll service|Each remote worker|The facilities manager|The IT helpdesk|"
    "A contractor|The finance department|The onboarding buddy|Our forecasting group|"
    "The hiring committee|An intern|The release manager|The data protection officer"
).split("|")
_VERBS = (
    "approves|reviews|books|reimburses|schedules|documents|encrypts|archives|tracks|announces|"
    "renews|audits|replaces|configures|forwards|measures|prepares|signs"
).split("|")
_OBJECTS = (
    "flight tickets|laptop upgrades|expense reports|conference budgets|badge requests|"
    "weather radar feeds|airport contracts|training plans|parking permits|vacation requests|"
    "backup tapes|incident reports|salary reviews|office keys|monitor orders|software licences|"
    "forecast models|customer tickets|meeting rooms|health checks"
).split("|")
_TAILS = (
    "before the end of each quarter|within thirty days|after a short review|every Monday morning|"
    "on the shared calendar|through the internal portal|with the written consent of a manager|"
    "unless the amount exceeds 500 EUR|during the first week|for every runway sensor|"
    "when a deadline moves|in both offices|at least twice a year|as soon as possible"
).split("|")


def prose(rng: random.Random, sentences: int) -> str:
    """Plain English sentences about a fictional company, different for every seed."""
    out = []
    for _ in range(sentences):
        out.append(f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} {rng.choice(_TAILS)}.")
    return " ".join(out)


def paragraphs(seed: int, count: int, sentences: int = 5) -> list[str]:
    rng = random.Random(seed)
    return [prose(rng, sentences) for _ in range(count)]


# ---------------------------------------------------------------------------------------------------------------
# PDF, written by hand: one Helvetica font, one content stream per page, exact xref offsets


def _pdf_string(text: str) -> str:
    return "(" + text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def _text_page(lines: list[str], size: int = 11) -> str:
    ops = ["BT", f"/F1 {size} Tf", "72 740 Td", f"{size + 4} TL"]
    ops += [f"{_pdf_string(line)} '" for line in lines]
    return "\n".join([*ops, "ET"])


def pdf_bytes(pages: list[str]) -> bytes:
    """A valid PDF 1.4 whose pages have the given content streams."""
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(len(pages)))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    for i, content in enumerate(pages):
        stream = content.encode("latin-1")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            f"/Contents {5 + 2 * i} 0 R >>".encode()
        )
        objects.append(f"<< /Length {len(stream)} >>\nstream\n".encode() + stream + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def _wrap(text: str, width: int = 90) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return [*lines, line] if line else lines


def write_pdf(path: Path, title: str, body: list[str]) -> Path:
    """A text PDF: the title and the paragraphs, wrapped, about 40 lines a page."""
    lines = [title, ""]
    for paragraph in body:
        lines += [*_wrap(paragraph), ""]
    pages = [_text_page(lines[i : i + 40]) for i in range(0, len(lines), 40)]
    path.write_bytes(pdf_bytes(pages))
    return path


def write_slow_pdf(path: Path, words: int = 3000) -> Path:
    """One small page (100 kB) of thousands of scattered words: pdfminer's layout analysis needs
    minutes for it (3000 words: about 4.5 minutes here), which is what a hanging parse looks like."""
    rng = random.Random(619)
    ops = ["BT", "/F1 4 Tf"]
    ops += [f"1 0 0 1 {rng.uniform(0, 600):.1f} {rng.uniform(0, 780):.1f} Tm (w{i}) Tj" for i in range(words)]
    path.write_bytes(pdf_bytes(["\n".join([*ops, "ET"])]))
    return path


# ---------------------------------------------------------------------------------------------------------------
# Office formats


def write_docx(path: Path, title: str, body: list[str], table: list[list[str]] | None = None) -> Path:
    import docx

    document = docx.Document()
    document.add_heading(title, level=1)
    for paragraph in body:
        document.add_paragraph(paragraph)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                grid.cell(r, c).text = value
    document.save(str(path))
    return path


def write_pptx(path: Path, slides: list[tuple[str, str]]) -> Path:
    import pptx

    deck = pptx.Presentation()
    for title, text in slides:
        slide = deck.slides.add_slide(deck.slide_layouts[1])  # title and content
        slide.shapes.title.text = title
        slide.placeholders[1].text = text
    deck.save(str(path))
    return path


def write_xlsx(path: Path, sheets: dict[str, list[list[object]]]) -> Path:
    import openpyxl

    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    book.save(str(path))
    return path


# ---------------------------------------------------------------------------------------------------------------
# e-mail, with an image attachment (the parser keeps the message when it cannot read the attachment)


def png_bytes(width: int = 4, height: int = 4) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + bytes([200, 30, 30]) * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def write_eml(path: Path, subject: str, body: str, image: bool = True) -> Path:
    message = EmailMessage()
    message["From"] = "Facilities <facilities@northwind.example>"
    message["To"] = "All staff <staff@northwind.example>"
    message["Subject"] = subject
    message["Date"] = "Tue, 03 Mar 2026 09:15:00 +0000"
    message["Message-ID"] = "<family-day-2026@northwind.example>"
    message.set_content(body)
    if image:
        message.add_attachment(png_bytes(), maintype="image", subtype="png", filename="map.png")
    path.write_bytes(message.as_bytes(policy=email.policy.SMTP))
    return path


# ---------------------------------------------------------------------------------------------------------------
# formats made with pandoc (the pypandoc-binary the parser itself uses for them)


def _pandoc(markdown: str, to: str, path: Path) -> Path:
    import pypandoc

    pypandoc.convert_text(
        markdown,
        to,
        format="markdown",
        outputfile=str(path),
        extra_args=["--metadata", "title=Northwind Labs"] if to == "epub" else [],
    )
    return path


def write_rtf(path: Path, title: str, body: list[str]) -> Path:
    def escape(text: str) -> str:
        return text.replace("\\", "\\\\").replace("{", "\\{").replace("}", "\\}")

    pars = "".join(f"{escape(p)}\\par\n" for p in body)
    path.write_text(
        f"{{\\rtf1\\ansi\\deff0{{\\fonttbl{{\\f0 Helvetica;}}}}\\f0\\fs24\n{{\\b {escape(title)}}}\\par\n{pars}}}\n"
    )
    return path


def write_odt(path: Path, title: str, body: list[str]) -> Path:
    return _pandoc(f"# {title}\n\n" + "\n\n".join(body) + "\n", "odt", path)


def write_epub(path: Path, title: str, body: list[str]) -> Path:
    return _pandoc(f"# {title}\n\n" + "\n\n".join(body) + "\n", "epub", path)


# ---------------------------------------------------------------------------------------------------------------
# one document per format, each with a phrase of its own that the parse must return


def _text_writer(render: Callable[[str, list[str]], str]) -> Callable[[Path, str, list[str]], Path]:
    def write(path: Path, title: str, body: list[str]) -> Path:
        path.write_text(render(title, body))
        return path

    return write


_HTML = _text_writer(
    lambda t, b: (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>'
        f"{t}</title></head>\n<body>\n<h1>{t}</h1>\n"
        + "".join(f"<p>{p}</p>\n" for p in b)
        + "<ul><li>Lisbon</li><li>Tallinn</li></ul>\n</body></html>\n"
    )
)
_MARKDOWN = _text_writer(lambda t, b: f"# {t}\n\n" + "\n\n".join(b) + "\n\n- Lisbon\n- Tallinn\n")
_RST = _text_writer(lambda t, b: f"{t}\n{'=' * len(t)}\n\n" + "\n\n".join(b) + "\n")
_TEXT = _text_writer(lambda t, b: f"{t}\n\n" + "\n\n".join(b) + "\n")


def _csv(path: Path, title: str, body: list[str]) -> Path:
    path.write_text("office,staff,note\nLisbon,80," + title + "\nTallinn,60," + body[0].split(".")[0] + "\n")
    return path


def _docx(path: Path, title: str, body: list[str]) -> Path:
    return write_docx(path, title, body, table=[["Office", "Staff"], ["Lisbon", "80"], ["Tallinn", "60"]])


def _pptx(path: Path, title: str, body: list[str]) -> Path:
    return write_pptx(path, [(title, body[0]), ("Next steps", body[-1])])


def _xlsx(path: Path, title: str, body: list[str]) -> Path:
    rows = [["Item", "EUR", "Note"], ["Monitors", 4200, title], ["Travel", 18000, body[0]]]
    return write_xlsx(path, {"Budget": rows})


def _eml(path: Path, title: str, body: list[str]) -> Path:
    # the subject is metadata, not text: the body names it again
    return write_eml(path, title, f"Hello everyone,\n\n{title}.\n\n" + "\n\n".join(body) + "\n\nFacilities\n")


WRITERS: dict[str, Callable[[Path, str, list[str]], Path]] = {
    ".pdf": write_pdf,
    ".docx": _docx,
    ".pptx": _pptx,
    ".xlsx": _xlsx,
    ".csv": _csv,
    ".html": _HTML,
    ".md": _MARKDOWN,
    ".txt": _TEXT,
    ".rst": _RST,
    ".eml": _eml,
    ".odt": write_odt,
    ".rtf": write_rtf,
    ".epub": write_epub,
}
FORMATS = sorted(WRITERS)


def write_document(folder: Path, suffix: str, seed: int = 0, paragraphs_count: int = 3) -> tuple[Path, list[str]]:
    """A document in the format of `suffix`; returns it and phrases (its title, its first sentence)
    that its parse must return."""
    title = f"Northwind {suffix[1:].upper()} notice {seed}"
    body = paragraphs(seed * 100 + len(suffix), paragraphs_count)
    path = WRITERS[suffix](folder / f"notice-{seed}{suffix}", title, body)
    return path, [title, body[0].split(".")[0]]


# ---------------------------------------------------------------------------------------------------------------
# bad files


def write_corrupt_pdf(path: Path) -> Path:
    path.write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\ngarbage" + bytes(range(256)) * 20)
    return path


def write_corrupt_docx(path: Path) -> Path:
    path.write_bytes(b"PK\x03\x04 this is not really a zip file")
    return path


# ---------------------------------------------------------------------------------------------------------------
# corpora


def write_mixed_corpus(root: Path) -> dict[str, object]:
    """Every format in `formats/`, a small handbook in `handbook/` and two broken files in `broken/`.
    Returns the paths a test edits and deletes and the files expected to fail."""
    (root / "formats").mkdir(parents=True)
    (root / "handbook").mkdir()
    (root / "broken").mkdir()
    for n, suffix in enumerate(FORMATS):
        write_document(root / "formats", suffix, seed=n, paragraphs_count=4)
    for n, topic in enumerate(["leave", "travel", "equipment", "security"]):
        _MARKDOWN(root / "handbook" / f"{topic}.md", f"{topic.title()} policy", paragraphs(1000 + n, 6))
    failing = [write_corrupt_pdf(root / "broken" / "scan.pdf"), write_corrupt_docx(root / "broken" / "report.docx")]
    return {
        "edit": root / "handbook" / "leave.md",
        "delete": root / "formats" / f"notice-{FORMATS.index('.odt')}.odt",
        "failing": failing,
    }


def write_crash_corpus(root: Path, files: int = 24) -> Path:
    """A handbook-sized corpus (about 70,000 words in Markdown, Word, PDF and Excel files): long
    enough to ingest that kills land in the middle, over 100 chunks."""
    root.mkdir(parents=True)
    for n in range(files):
        body = paragraphs(5000 + n, 40, sentences=6)  # about 2,800 words a file
        title = f"Handbook chapter {n}"
        if n % 8 == 3:
            write_docx(root / f"chapter-{n:02d}.docx", title, body)
        elif n % 8 == 5:
            write_pdf(root / f"chapter-{n:02d}.pdf", title, body)
        else:
            _MARKDOWN(root / f"chapter-{n:02d}.md", title, body)
    write_xlsx(
        root / "risk-tracker.xlsx",
        {
            "Risks": [
                ["Risk", "Owner", "Mitigation"],
                *[[f"Risk {i}", f"Team {i % 5}", p[:120]] for i, p in enumerate(paragraphs(77, 30))],
            ]
        },
    )
    return root


# ---------------------------------------------------------------------------------------------------------------
# texts for the keyword index: real English words with inflections, Zipf-distributed, plus rare tokens

_WORDS = sorted(
    {w.lower().strip(".,") for w in " ".join(_SUBJECTS + _VERBS + _OBJECTS + _TAILS).split()}
    | set(
        "cell cells cancer tumour tumor gene genes expression protein proteins vitamin bone density bacteria "
        "antibiotic resistance patients patient trial trials dose doses risk risks study studies mouse mice "
        "blood pressure heart liver kidney brain neuron neurons signal signalling pathway pathways receptor "
        "receptors infection infections virus viral immune response responses therapy therapies drug drugs "
        "increase increased increases reduce reduced reduction higher lower associated association effect "
        "effects level levels rate rates model models analysis data sample samples measured measuring".split()
    )
)


def keyword_corpus(documents: int = 900, queries: int = 40, seed: int = 7) -> tuple[dict[int, str], list[str]]:
    """Texts keyed 1000.. and queries over the same Zipf-distributed vocabulary (with stop words)."""
    rng = random.Random(seed)
    vocabulary = list(_WORDS)
    rng.shuffle(vocabulary)
    vocabulary += [f"xq{n}marker" for n in range(300)]  # rare words: a few documents each
    weights = [1.0 / (rank + 1) for rank in range(len(vocabulary))]
    stop = ["the", "of", "and", "in", "a", "to", "is", "with", "for", "by"]

    def text(words: int) -> str:
        picked = rng.choices(vocabulary, weights, k=words)
        return " ".join(w if rng.random() > 0.25 else f"{rng.choice(stop)} {w}" for w in picked)

    texts = {1000 + n: text(rng.randint(30, 160)) for n in range(documents)}
    return texts, [text(rng.randint(3, 12)) for _ in range(queries)]
