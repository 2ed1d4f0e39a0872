"""A `tune` job: train a candidate embedder from the serving one on the ingested chunks (rag/tuning),
register it, and run the held-out half of the evaluation gate. Resumable: the work folder is named
after the parent model and the data, so a rerun after a kill continues from its checkpoint.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from indexes.generations import GenerationStore
from ingest.indexing import watermark_of
from ingest.model_jobs import ModelJobRunner, Progress
from rag import jobs
from rag import model_registry as registry
from rag.db.models import Chunk, Collection, Document
from rag.errors import InvalidRequestError
from rag.settings import Settings


def training_chunks(session: Session, collection: str | None) -> list:
    """The ingested chunks (of one collection), as the tuner takes them; documents keyed by path."""
    from rag.tuning.trainer import TrainingChunk

    query = select(Document.path, Chunk.id, Chunk.text).join(Document, Chunk.document_id == Document.id)
    if collection:
        query = query.join(Collection, Document.collection_id == Collection.id).where(Collection.name == collection)
    rows = session.execute(query.order_by(Chunk.id)).all()
    return [TrainingChunk(document_key=path, chunk_id=int(cid), text=text) for path, cid, text in rows]


def heldout_gate(session: Session, settings: Settings, model, chunks: list) -> dict:
    """Held-out documents' self-supervised queries: the candidate against the active model."""
    from rag.tuning.heldout import heldout_eval

    active = registry.active_model(session, settings)
    candidate = heldout_eval(Path(model.path), chunks)
    baseline = heldout_eval(Path(active.path), chunks)
    return registry.record_evaluation(session, model, "heldout", candidate, active, baseline)


class Tuner(ModelJobRunner):
    kind = jobs.TUNE

    def _work(self, job_id: int, params: dict, on_progress: Progress) -> dict:
        from rag.tuning.trainer import TuneConfig, tune_embedder

        collection = params.get("collection") or None
        max_minutes = float(params.get("max_minutes") or self.settings.tune_max_minutes)
        with self.factory() as session:
            parent = registry.active_model(session, self.settings)
            chunks = training_chunks(session, collection)
            session.expunge(parent)
        if not chunks:
            raise InvalidRequestError(f"no ingested chunks{f' in collection {collection}' if collection else ''}")
        manifest = GenerationStore(self.settings.index_dir).current()
        watermark = watermark_of(np.asarray([c.chunk_id for c in chunks], dtype=np.int64))
        key = hashlib.sha256(f"{parent.sha256}|{collection}|{watermark['ids_sha256']}".encode()).hexdigest()[:16]
        embedders = self.settings.models_dir / "embedders"
        work_dir = embedders / "work" / key
        work_dir.mkdir(parents=True, exist_ok=True)

        def progress(done: int, total: int) -> None:
            self._progress(job_id, done, total)
            on_progress(done, total)

        tuned = tune_embedder(
            Path(parent.path), chunks, work_dir, TuneConfig(max_minutes=max_minutes), progress=progress
        )
        folder = self._keep(Path(tuned.model_dir), embedders)
        with self.factory() as session:
            parent = registry.get_model(session, parent.id)
            model = registry.register_candidate(
                session,
                self.settings,
                folder,
                parent=parent,
                method=tuned.method,
                method_settings=dict(tuned.settings),
                trained_on={
                    "collection": collection,
                    "generation": manifest.generation if manifest else None,
                    "watermark": watermark,
                    "chunks": len(chunks),
                    "examples": tuned.examples,
                    "steps": tuned.steps,
                    "wall_s": round(tuned.wall_s, 1),
                    "completed": tuned.completed,
                },
                created_by=str(params.get("actor") or "unknown"),
            )
            gate = heldout_gate(session, self.settings, model, chunks)
            return {"model_id": model.id, "sha256": model.sha256, "heldout": gate, "completed": tuned.completed}

    @staticmethod
    def _keep(trained: Path, embedders: Path) -> Path:
        """The trained folder copied to models/embedders/<weights sha256 prefix> (same weights, same folder)."""
        digest = registry.weights_sha256(trained)
        folder = embedders / digest[:16]
        if not folder.exists():
            tmp = embedders / f".{digest[:16]}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(trained, tmp)
            tmp.rename(folder)
        return folder
