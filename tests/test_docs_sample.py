"""The 97 real documents of ../shared/docs-sample on both databases (slow: the real embedder)."""

from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from ingest.indexing import check
from rag.db.models import JobFile

from .conftest import DOCS_SAMPLE
from .helpers import chunk_ids_by_path, copy_tree, run_job

pytestmark = pytest.mark.slow

FORMATS = {".pdf", ".docx", ".pptx", ".xlsx", ".csv", ".html", ".md", ".txt", ".rst", ".eml", ".msg", ".odt",
           ".rtf", ".epub"}


def test_every_file_is_indexed_or_fails_with_a_reason_and_reruns_are_incremental(settings, db, embedder, tmp_path):
    _, factory = db
    corpus = copy_tree(DOCS_SAMPLE, tmp_path / "docs")
    files = sorted(p for p in corpus.rglob("*") if p.is_file() and not p.name.startswith("."))
    assert len(files) >= 97

    first = run_job(settings, db, embedder, corpus, parse_workers=1)
    assert first.files_seen == len(files)
    assert first.files_indexed + first.files_failed == len(files)
    assert all(e.error.strip() for e in first.errors)
    assert first.files_failed <= 5, [(Path(e.path).name, e.error) for e in first.errors]
    indexed = set(chunk_ids_by_path(factory))
    assert FORMATS <= {Path(p).suffix.lower() for p in indexed}, "a required format was not indexed"
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
    edited = corpus / "18f-handbook" / "travel-and-leave__leave.md"
    edited.write_text(edited.read_text() + "\n\n## Sabbatical\n\nAfter seven years, staff may take a sabbatical.\n")
    deleted = corpus / "unstructured" / "fake.odt"
    deleted.unlink()
    third = run_job(settings, db, embedder, corpus, parse_workers=1)
    assert (third.files_indexed, third.files_deleted) == (1, 1)
    after = chunk_ids_by_path(factory)
    changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
    assert changed == {str(edited), str(deleted)}
    assert check(factory, settings.index_dir) == []
