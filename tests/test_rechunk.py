"""A new chunker version re-chunks stored documents on the next ingest (issue 18): documents whose
chunks come out the same keep their rows and cost no embedding; changed ones are replaced, embedding
only chunk texts that are new, in one transaction per document (a crash leaves the old version)."""

import pytest
from sqlalchemy import select, update

from ingest.chunking import CHUNKER_VERSION
from ingest.indexing import check
from rag.db.models import Chunk, Document

from .helpers import HANDBOOK, chunk_ids_by_path, copy_tree, run_job


def _age(factory, shredded: str | None) -> int:
    """Mark every document as cut by chunker version 1; `shredded`'s first chunk text differs, as an
    older cut would. Returns that document's chunk count."""
    with factory() as session:
        session.execute(update(Document).values(chunker_version=1))
        doc = session.scalars(select(Document).where(Document.path == shredded)).one()
        first = session.scalars(select(Chunk).where(Chunk.document_id == doc.id).order_by(Chunk.ordinal)).first()
        first.text = first.text[: len(first.text) // 2]
        session.commit()
        return doc.chunk_count


def test_only_documents_whose_chunks_change_are_rechunked_and_only_new_texts_embedded(
    settings, db, fake_embedder, tmp_path
):
    _, factory = db
    corpus = copy_tree(HANDBOOK, tmp_path / "handbook")
    first = run_job(settings, db, fake_embedder, corpus)
    with factory() as session:
        assert set(session.scalars(select(Document.chunker_version))) == {CHUNKER_VERSION}
    changed = str(corpus / "it-security.txt")
    chunks_of_changed = _age(factory, changed)
    before = chunk_ids_by_path(factory)
    embedded = fake_embedder.texts_embedded

    second = run_job(settings, db, fake_embedder, corpus)
    assert second.files_indexed == 1 and second.files_unchanged == first.files_indexed - 1
    assert fake_embedder.texts_embedded - embedded == 1  # the one chunk whose text differed
    assert (second.chunks_added, second.chunks_removed) == (chunks_of_changed, chunks_of_changed)
    after = chunk_ids_by_path(factory)
    for path, ids in after.items():
        assert (ids == before[path]) == (path != changed), path
    with factory() as session:
        assert set(session.scalars(select(Document.chunker_version))) == {CHUNKER_VERSION}
        doc = session.scalars(select(Document).where(Document.path == changed)).one()
        assert doc.version == 1  # the file did not change: same version, same SHA-256 in citations
    assert check(factory, settings.index_dir) == []

    third = run_job(settings, db, fake_embedder, corpus)
    assert third.files_unchanged == first.files_indexed and third.chunks_embedded == 0


class CrashError(Exception):
    pass


class CrashingEmbedder:
    def __init__(self, inner) -> None:
        self.inner, self.dim, self.max_tokens = inner, inner.dim, inner.max_tokens

    def embed(self, texts):
        raise CrashError("killed while embedding")


def test_a_crash_while_rechunking_leaves_the_old_version_and_the_next_run_completes(
    settings, db, fake_embedder, tmp_path
):
    _, factory = db
    corpus = copy_tree(HANDBOOK, tmp_path / "handbook")
    run_job(settings, db, fake_embedder, corpus)
    changed = str(corpus / "it-security.txt")
    _age(factory, changed)
    stale = chunk_ids_by_path(factory)
    with pytest.raises(CrashError):
        run_job(settings, db, CrashingEmbedder(fake_embedder), corpus)
    with factory() as session:
        versions = {p: v for p, v in session.execute(select(Document.path, Document.chunker_version))}
    assert versions[changed] == 1 and chunk_ids_by_path(factory)[changed] == stale[changed]

    run_job(settings, db, fake_embedder, corpus)
    with factory() as session:
        assert set(session.scalars(select(Document.chunker_version))) == {CHUNKER_VERSION}
        texts = session.scalars(
            select(Chunk.text).join(Document).where(Document.path == changed).order_by(Chunk.ordinal)
        ).all()
    assert texts and chunk_ids_by_path(factory)[changed] != stale[changed]
    assert check(factory, settings.index_dir) == []
