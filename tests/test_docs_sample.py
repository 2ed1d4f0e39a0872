"""A corpus of every format: our own generated documents (always, on both databases) and the 97 real
third-party documents of ../shared/docs-sample (slow: the real embedder; on PostgreSQL)."""

from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from ingest.indexing import check
from rag.db.models import JobFile

from . import fixtures
from .helpers import chunk_ids_by_path, copy_tree, run_job
from .shared_data import shared_path

pytestmark = pytest.mark.slow

FORMATS = {
    ".pdf",
    ".docx",
    ".pptx",
    ".xlsx",
    ".csv",
    ".html",
    ".md",
    ".txt",
    ".rst",
    ".eml",
    ".msg",
    ".odt",
    ".rtf",
    ".epub",
}


def test_every_own_file_is_indexed_or_fails_with_its_reason_and_reruns_are_incremental(
    settings, db, embedder, tmp_path
):
    _, factory = db
    corpus = tmp_path / "docs"
    made = fixtures.write_mixed_corpus(corpus)
    files = sorted(p for p in corpus.rglob("*") if p.is_file())
    first = run_job(settings, db, embedder, corpus, parse_workers=1)
    assert (first.files_seen, first.files_indexed, first.files_failed) == (len(files), len(files) - 2, 2)
    reasons = {Path(e.path).name: e.error for e in first.errors}
    assert reasons.keys() == {p.name for p in made["failing"]}, reasons
    assert reasons["scan.pdf"].startswith("corrupt PDF") and reasons["report.docx"].strip(), reasons
    indexed = set(chunk_ids_by_path(factory))
    assert {Path(p).suffix.lower() for p in indexed} == FORMATS - {".msg"}  # no .msg of our own: Outlook only
    _check_reruns(settings, db, embedder, corpus, first, made["edit"], made["delete"])


# once, on PostgreSQL (the production database): parsing and embedding 97 real documents costs minutes
# per run on two cores, and the SQLite side of every format is covered by the test above
@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_every_file_is_indexed_or_fails_with_a_reason_and_reruns_are_incremental(settings, db, embedder, tmp_path):
    _, factory = db
    corpus = copy_tree(shared_path("docs-sample"), tmp_path / "docs")
    files = sorted(p for p in corpus.rglob("*") if p.is_file() and not p.name.startswith("."))
    assert len(files) >= 97

    first = run_job(settings, db, embedder, corpus, parse_workers=1)
    assert first.files_seen == len(files)
    assert first.files_indexed + first.files_failed == len(files)
    assert all(e.error.strip() for e in first.errors)
    assert first.files_failed <= 5, [(Path(e.path).name, e.error) for e in first.errors]
    indexed = set(chunk_ids_by_path(factory))
    assert FORMATS <= {Path(p).suffix.lower() for p in indexed}, "a required format was not indexed"
    _check_reruns(
        settings,
        db,
        embedder,
        corpus,
        first,
        corpus / "18f-handbook" / "travel-and-leave__leave.md",
        corpus / "unstructured" / "fake.odt",
    )


def _check_reruns(settings, db, embedder, corpus, first, edited, deleted):
    """The job recorded every file; a rerun embeds nothing; an edit and a delete touch those files only."""
    _, factory = db
    with factory() as session:
        recorded = Counter(f.status for f in session.scalars(select(JobFile).where(JobFile.job_id == first.job_id)))
    assert recorded == Counter(indexed=first.files_indexed, failed=first.files_failed)
    assert check(factory, settings.index_dir) == []

    calls = embedder.calls
    second = run_job(settings, db, embedder, corpus, parse_workers=1)
    assert (second.chunks_added, second.chunks_removed, second.files_indexed) == (0, 0, 0)
    assert second.files_unchanged == first.files_indexed
    assert embedder.calls == calls

    before = chunk_ids_by_path(factory)
    edited.write_text(edited.read_text() + "\n\n## Sabbatical\n\nAfter seven years, staff may take a sabbatical.\n")
    deleted.unlink()
    third = run_job(settings, db, embedder, corpus, parse_workers=1)
    assert (third.files_indexed, third.files_deleted) == (1, 1)
    after = chunk_ids_by_path(factory)
    changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
    assert changed == {str(edited), str(deleted)}
    assert check(factory, settings.index_dir) == []
