"""Ingestion end to end on both databases, with real files: in process with the deterministic FakeEmbedder
(what is under test is the pipeline, not the vectors), through the real `rag` CLI with the real model."""

import json
import subprocess
import sys

import numpy as np
from sqlalchemy import select

from indexes.generations import GenerationStore
from indexes.vector import FaissVectorIndex
from ingest.indexing import check
from rag.db.models import Document, IngestionJob, JobFile

from .helpers import HANDBOOK, chunk_ids_by_path, copy_tree, run_job

RAG = [sys.executable, "-m", "cli"]


def test_incremental_ingest_redoes_only_what_changed(settings, db, fake_embedder, tmp_path):
    engine, factory = db
    corpus = copy_tree(HANDBOOK, tmp_path / "handbook")
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.4\n%garbage")
    (corpus / "empty.md").write_bytes(b"")

    first = run_job(settings, db, fake_embedder, corpus, groups=["staff"], label="internal")
    assert first.files_seen == 8
    assert first.files_indexed == 6 and first.files_failed == 2
    assert {e.path.rsplit("/", 1)[1]: e.error for e in first.errors}["empty.md"] == "empty file"
    assert first.chunks_added > 10
    assert check(factory, settings.index_dir) == []
    calls_after_first = fake_embedder.calls

    second = run_job(settings, db, fake_embedder, corpus)
    assert (second.files_unchanged, second.files_indexed, second.chunks_added, second.chunks_removed) == (6, 0, 0, 0)
    assert fake_embedder.calls == calls_after_first  # unchanged files cost no embedding at all

    before = chunk_ids_by_path(factory)
    edited = corpus / "policies" / "expenses.md"
    edited.write_text(edited.read_text() + "\n## Mileage\n\nPrivate cars are reimbursed at 0.36 EUR per km.\n")
    (corpus / "it-security.txt").unlink()
    third = run_job(settings, db, fake_embedder, corpus)
    assert (third.files_indexed, third.files_deleted, third.files_unchanged) == (1, 1, 4)
    after = chunk_ids_by_path(factory)
    assert str(corpus / "it-security.txt") not in after
    for path, ids in after.items():
        if path != str(edited):
            assert ids == before[path], f"{path} was touched although it did not change"
    assert not (after[str(edited)] & before[str(edited)])
    assert third.chunks_removed == len(before[str(edited)]) + len(before[str(corpus / "it-security.txt")])
    assert check(factory, settings.index_dir) == []

    with factory() as session:
        doc = session.scalars(select(Document).where(Document.path == str(edited))).one()
        assert doc.version == 2 and [g.name for g in doc.groups] == ["staff"] and doc.label == "internal"
        job = session.get(IngestionJob, third.job_id)
        assert (job.state, job.files_indexed, job.files_deleted) == ("succeeded", 1, 1)
        statuses = {f.path: f.status for f in session.scalars(select(JobFile).where(JobFile.job_id == third.job_id))}
        assert statuses[str(edited)] == "indexed" and statuses[str(corpus / "it-security.txt")] == "deleted"


def test_chunks_keep_their_provenance(settings, db, fake_embedder, tmp_path):
    _, factory = db
    corpus = copy_tree(HANDBOOK, tmp_path / "handbook")
    run_job(settings, db, fake_embedder, corpus)
    from rag.db.models import Chunk

    with factory() as session:
        rows = session.execute(select(Chunk, Document).join(Document)).all()
    for chunk, doc in rows:
        assert chunk.document_sha256 == doc.sha256 and chunk.document_version == doc.version == 1
        assert 0 < chunk.token_count <= 254
        assert chunk.char_end - chunk.char_start == len(chunk.text)
        vector = np.frombuffer(chunk.embedding, dtype="<f4")
        assert vector.shape == (384,) and abs(float(np.linalg.norm(vector)) - 1) < 1e-3
    sections = {c.section for c, d in rows if d.path.endswith("time-off.md")}
    assert {"Vacation", "Sick leave"} <= sections
    # the last section is under the 32-token minimum: it shares the chunk of the section before it
    (parental,) = [c for c, d in rows if d.path.endswith("time-off.md") and "Parental leave" in c.text]
    assert parental.section == "Sick leave" and parental.token_count >= 32


def test_groups_and_label_are_kept_unless_given(settings, db, fake_embedder, tmp_path):
    _, factory = db
    corpus = copy_tree(HANDBOOK, tmp_path / "handbook")
    run_job(settings, db, fake_embedder, corpus, groups=["hr", "staff"], label="confidential")
    run_job(settings, db, fake_embedder, corpus)  # no --groups/--label: nothing changes
    with factory() as session:
        docs = session.scalars(select(Document)).all()
        assert all(sorted(g.name for g in d.groups) == ["hr", "staff"] and d.label == "confidential" for d in docs)
    calls = fake_embedder.calls
    run_job(settings, db, fake_embedder, corpus, groups=["hr"], label="restricted")  # metadata only: no re-embedding
    assert fake_embedder.calls == calls
    with factory() as session:
        docs = session.scalars(select(Document)).all()
        assert all([g.name for g in d.groups] == ["hr"] and d.label == "restricted" for d in docs)


def test_cli_json_check_and_reindex(settings, cli_env, tmp_path):
    corpus = copy_tree(HANDBOOK, tmp_path / "handbook")
    out = subprocess.run(
        [*RAG, "ingest", str(corpus), "--collection", "hb", "--groups", "staff", "--label", "internal", "--json"],
        env=cli_env,
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(out.stdout)
    assert set(report) == {
        "job_id",
        "files_total",
        "files_seen",
        "files_indexed",
        "files_unchanged",
        "files_deleted",
        "files_failed",
        "chunks_added",
        "chunks_removed",
        "errors",
    }
    assert report["files_total"] == report["files_seen"]
    assert report["files_indexed"] == 6 and report["errors"] == []

    ok = subprocess.run([*RAG, "check"], env=cli_env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr

    # Drop one vector from the live generation behind the database's back: check must notice.
    store = GenerationStore(settings.index_dir)
    folder = store.folder(store.current())
    vector = FaissVectorIndex.load(folder)
    victim = vector.ids()[:1]
    vector.remove(victim)
    vector.save(folder)
    bad = subprocess.run([*RAG, "check"], env=cli_env, capture_output=True, text=True)
    assert bad.returncode == 1
    assert len(bad.stderr.strip().splitlines()) == 1 and "checksum mismatch" in bad.stderr

    fixed = subprocess.run([*RAG, "reindex"], env=cli_env, capture_output=True, text=True)
    assert fixed.returncode == 0, fixed.stderr
    assert subprocess.run([*RAG, "check"], env=cli_env, capture_output=True).returncode == 0

    missing = subprocess.run([*RAG, "ingest", str(tmp_path / "nope")], env=cli_env, capture_output=True, text=True)
    assert missing.returncode == 2 and missing.stderr.strip() == f"error: path not found: {tmp_path / 'nope'}"


def test_control_characters_are_stripped_and_one_bad_document_fails_alone(
    settings, db, fake_embedder, tmp_path, monkeypatch
):
    _, factory = db
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "nul.txt").write_bytes(b"Quarterly report\n\nRevenue grew\x00 by 4%\x07 in Q3.\n")
    (corpus / "fine.md").write_text("# Fine\n\nNothing odd here at all, just text.\n")
    report = run_job(settings, db, fake_embedder, corpus)
    assert (report.files_indexed, report.files_failed) == (2, 0)
    from rag.db.models import Chunk

    with factory() as session:
        texts = " ".join(session.scalars(select(Chunk.text)))
    assert "Revenue grew by 4% in Q3." in texts and "\x00" not in texts

    # A database error on one document's rows (here forced) fails that file only.
    from sqlalchemy.exc import DataError

    from ingest import pipeline

    real = pipeline.Ingestor._replace_chunks

    def refuse_one(self, session, collection_id, parsed, *args):
        if parsed.path.endswith("bad.md"):
            raise DataError("INSERT", {}, ValueError("refused"))
        return real(self, session, collection_id, parsed, *args)

    monkeypatch.setattr(pipeline.Ingestor, "_replace_chunks", refuse_one)
    (corpus / "bad.md").write_text("# Bad\n\nThis one the database refuses.\n")
    (corpus / "good.md").write_text("# Good\n\nThis one is stored.\n")
    report = run_job(settings, db, fake_embedder, corpus)
    assert (report.files_indexed, report.files_failed, report.files_unchanged) == (1, 1, 2)
    assert "refused this document's content" in report.errors[0].error
    assert check(factory, settings.index_dir) == []
