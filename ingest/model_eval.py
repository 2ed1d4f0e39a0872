"""The labelled half of the evaluation gate: a candidate and the active embedder scored on an admin's
BEIR folder (queries, qrels), over the same chunks and keyword index, with the product's hybrid
retriever (nDCG@10 gates) and dense alone (reported).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from indexes.snapshot import load_snapshot
from indexes.vector import FaissVectorIndex
from ingest.pipeline import Ingestor
from rag import jobs
from rag import model_registry as registry
from rag.db.models import Chunk, Document
from rag.db.session import make_engine, make_sessionmaker, migrate
from rag.evaluation import evaluate, load_beir, write_corpus
from rag.model_loader import ModelEmbedders
from rag.protocols import Embedder
from rag.retrieval import HybridRetriever
from rag.service import fusion_params
from rag.settings import Settings

_EMBED_BATCH = 256


def _corpus(settings: Settings, embedder: Embedder, folder: Path, work: Path):
    """The BEIR corpus ingested once into a private database (kept between runs, as `rag eval beir`)."""
    private = settings.model_copy(update={"data_dir": work, "database_url": None})
    docs = work / "documents"
    write_corpus(folder / "corpus.jsonl", docs)
    engine = make_engine(private)
    migrate(engine)
    factory = make_sessionmaker(engine)
    with factory() as session:
        job = jobs.create_job(session, str(docs.resolve()), "eval", None, None, state=jobs.RUNNING)
    Ingestor(private, engine, factory, embedder, parse_workers=0).run(job.id)
    return private, factory


def _score(embedder: Embedder, texts: list[str], ids: np.ndarray, keyword, beir, doc_of_chunk, settings) -> dict:
    vectors = (
        np.concatenate([embedder.embed(texts[i : i + _EMBED_BATCH]) for i in range(0, len(texts), _EMBED_BATCH)])
        if texts
        else np.zeros((0, embedder.dim), dtype=np.float32)
    )
    index = FaissVectorIndex(embedder.dim)
    index.add(ids, vectors)
    search = HybridRetriever(embedder, index, keyword, fusion_params(settings))
    depth = max(300, settings.fusion_depth)
    out = {}
    for mode in ("hybrid", "dense"):
        result = evaluate(beir, lambda q, m=mode: [h.chunk_id for h in search.search(q, depth, mode=m)], doc_of_chunk)
        prefix = "" if mode == "hybrid" else "dense_"
        out.update({f"{prefix}{k}": (round(v, 6) if isinstance(v, float) else v) for k, v in result.items()})
    return out


def evaluate_on_beir(
    settings: Settings, session: Session, models: ModelEmbedders, model, folder: Path, split: str
) -> dict:
    """Scores `model` and the active model on `folder`'s `split` and records it as `beir:<name>:<split>`."""
    beir = load_beir(folder, split)
    active = registry.active_model(session, settings)
    active_embedder = models.get(active)
    work = settings.data_dir / "eval" / folder.resolve().name
    private, factory = _corpus(settings, active_embedder, folder, work)
    with factory() as s:
        rows = s.execute(select(Chunk.id, Chunk.text, Document.path).join(Document).order_by(Chunk.id)).all()
    ids = np.asarray([r[0] for r in rows], dtype=np.int64)
    texts = [r[1] for r in rows]
    doc_of_chunk = {int(r[0]): Path(r[2]).stem for r in rows}
    keyword = load_snapshot(private.index_dir).keyword
    candidate = _score(models.get(model), texts, ids, keyword, beir, doc_of_chunk, settings)
    baseline = _score(active_embedder, texts, ids, keyword, beir, doc_of_chunk, settings)
    return registry.record_evaluation(session, model, f"beir:{folder.name}:{split}", candidate, active, baseline)
