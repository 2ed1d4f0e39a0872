"""`rag eval ...`: measure retrieval quality on standard data sets through the real ingestion path."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from cli.runtime import ProgressBar, Runtime, fail


@click.group(name="eval")
def eval_group() -> None:
    """Measure retrieval quality on standard data sets."""


@eval_group.command(name="beir")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--split", default="test", show_default=True, help="qrels split to score (tune on train, report on test)."
)
@click.option("--retriever", type=click.Choice(["hybrid", "dense", "bm25"]), default="hybrid", show_default=True)
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the evaluation's own database and indexes live (default: DATA_DIR/eval/<folder name>). "
    "Kept between runs: a second run re-ingests nothing.",
)
@click.option("--limit", type=int, hidden=True, help="Only the first N documents (smoke tests).")
@click.option(
    "--ignore-identical-ids",
    is_flag=True,
    help="Drop a hit whose id equals the query id, as BEIR does for ArguAna (whose queries are documents too).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON object: ndcg@10, recall@100, mrr@10, queries, retriever, documents, chunks, "
    "chunks_embedded, ingest_s.",
)
def eval_beir(
    folder: Path,
    split: str,
    retriever: str,
    work_dir: Path | None,
    limit: int | None,
    ignore_identical_ids: bool,
    as_json: bool,
) -> None:
    """Ingest a BEIR folder through the real ingestion path and print nDCG@10, Recall@100, MRR@10."""
    from sqlalchemy import select

    from indexes.snapshot import load_snapshot
    from rag import jobs
    from rag.db.models import Chunk, Document
    from rag.db.session import make_engine, make_sessionmaker, migrate
    from rag.evaluation import evaluate, load_beir, write_corpus
    from rag.retrieval import HybridRetriever
    from rag.service import fusion_params

    rt = Runtime()
    try:
        beir = load_beir(folder, split)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        fail(str(exc))
    work = work_dir or rt.settings.data_dir / "eval" / folder.resolve().name
    settings = rt.settings.model_copy(update={"data_dir": work, "database_url": None})
    docs_dir = work / "documents"
    write_corpus(beir.corpus, docs_dir, limit)
    engine = make_engine(settings)
    migrate(engine)
    factory = make_sessionmaker(engine)
    from ingest.pipeline import Ingestor

    with factory() as session:
        job = jobs.create_job(session, str(docs_dir.resolve()), "eval", None, None, state=jobs.RUNNING)
    progress = ProgressBar(enabled=sys.stderr.isatty())
    started = time.perf_counter()
    report = Ingestor(settings, engine, factory, rt.embedder, parse_workers=0).run(job.id, on_progress=progress.update)
    ingest_s = time.perf_counter() - started
    progress.close()
    with factory() as session:
        doc_of_chunk = {
            cid: Path(path).stem for cid, path in session.execute(select(Chunk.id, Document.path).join(Document))
        }
    snapshot = load_snapshot(settings.index_dir)
    search = HybridRetriever(rt.embedder, snapshot.vector, snapshot.keyword, fusion_params(rt.settings))
    depth = max(300, rt.settings.fusion_depth)
    result = evaluate(
        beir,
        lambda q: [h.chunk_id for h in search.search(q, depth, mode=retriever)],
        doc_of_chunk,
        ignore_identical_ids=ignore_identical_ids,
    )
    result.update(
        retriever=retriever,
        documents=len(set(doc_of_chunk.values())),
        chunks=len(doc_of_chunk),
        chunks_embedded=report.chunks_embedded,  # this run's; 0 when nothing changed since the last one
        ingest_s=round(ingest_s, 1),
    )
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(
        f"{folder.name} ({split}, {result['queries']} queries, {retriever}): nDCG@10 {result['ndcg@10']:.4f}  "
        f"Recall@100 {result['recall@100']:.4f}  MRR@10 {result['mrr@10']:.4f}  "
        f"({result['chunks']} chunks of {result['documents']} documents; ingested in {ingest_s:.1f} s)"
    )
