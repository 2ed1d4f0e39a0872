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
    from rag.db.models import Chunk, Document
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
    write_corpus(beir.corpus, work / "documents", limit)
    started = time.perf_counter()
    factory, report = _ingest_for_eval(settings, rt.embedder, work / "documents")
    ingest_s = time.perf_counter() - started
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


@eval_group.command(name="answers")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--generator",
    type=click.Choice(["embedded", "openai", "extractive"]),
    help="The generator to answer with (default: RAG_GENERATOR).",
)
@click.option("--top-k", type=click.IntRange(1, 50), default=4, show_default=True, help="Passages per question.")
@click.option(
    "--threshold",
    type=click.FloatRange(0, 1),
    help="Answerability threshold to report at (default: RAG_ANSWERABILITY_THRESHOLD). Every run also prints "
    "the whole trade-off curve.",
)
@click.option("--sample", type=click.IntRange(2), help="Ask a seeded, balanced sample of N questions (tuning).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the evaluation's own database and indexes live (default: DATA_DIR/eval/<folder name>).",
)
@click.option(
    "--dump", type=click.Path(dir_okay=False, path_type=Path), help="Write one JSON line per question (features)."
)
@click.option("--shard", hidden=True, help="K/N: only every N-th question from the K-th (parallel runs).")
@click.option("--resume", is_flag=True, hidden=True, help="Skip questions already in --dump and append to it.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: result at the threshold and the curve.")
def eval_answers(
    folder: Path,
    generator: str | None,
    top_k: int,
    threshold: float | None,
    sample: int | None,
    seed: int,
    work_dir: Path | None,
    dump: Path | None,
    shard: str | None,
    resume: bool,
    as_json: bool,
) -> None:
    """Ask a folder's questions through the real query path; report unanswerables declined,
    answerables answered, answered ones containing a gold answer, and the gate's latency."""
    import itertools
    import random
    import time

    from rag.answer_eval import Outcome, curve, load_questions, summarise
    from rag.evaluation import write_corpus
    from rag.grounding import _CITATION
    from rag.service import build_answerer

    rt = Runtime()
    try:
        questions = load_questions(folder)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        fail(str(exc))
    if sample is not None:
        rng = random.Random(seed)
        groups = [[q for q in questions if q.answerable], [q for q in questions if not q.answerable]]
        for group in groups:
            rng.shuffle(group)
        picked = groups[0][: sample - sample // 2], groups[1][: sample // 2]
        # interleaved, so that a run stopped early is still balanced
        questions = [q for pair in itertools.zip_longest(*picked) for q in pair if q is not None]
    if shard is not None:
        k, _, n = shard.partition("/")
        if not (k.isdigit() and n.isdigit() and int(k) < int(n)):
            fail("--shard must be K/N with 0 <= K < N")
        questions = questions[int(k) :: int(n)]
    done: set[str] = set()
    if dump and resume and dump.is_file():
        with open(dump, encoding="utf-8") as f:
            done = {json.loads(line)["_id"] for line in f if line.strip()}
    work = work_dir or rt.settings.data_dir / "eval" / folder.resolve().name
    update = {"data_dir": work, "database_url": None, "answerability_threshold": 0.0}
    if generator:
        update["generator"] = generator
    settings = rt.settings.model_copy(update=update)
    report_at = rt.settings.answerability_threshold if threshold is None else threshold
    write_corpus(folder / "corpus.jsonl", work / "documents")
    factory, _ = _ingest_for_eval(settings, rt.embedder, work / "documents")
    answerer = build_answerer(settings, factory, rt.embedder)
    outcomes = []
    out = open(dump, "a" if resume else "w", encoding="utf-8") if dump else None
    try:
        for n, q in enumerate(questions, 1):
            if q.id in done:
                continue
            started = time.perf_counter()
            answer = answerer.answer(q.question, top_k=top_k)
            total_ms = (time.perf_counter() - started) * 1000
            kept = [c for c in answer.sentences if c.supported and not c.filler]
            outcome = Outcome(
                q,
                [(_CITATION.sub("", c.text).strip(), c.answerability or 0.0) for c in kept],
                total_ms,
                answer.timings_ms.get("answerability", 0.0),
                answer.status,
            )
            outcomes.append(outcome)
            if out:
                record = {
                    "_id": q.id,
                    "answerable": q.answerable,
                    "answers": q.answers,
                    "question": q.question,
                    "total_ms": round(total_ms, 2),
                    "gate_ms": outcome.gate_ms,
                    "retrieved": [p.path.rsplit("/", 1)[-1] for p in answer.passages],
                    "sentences": [
                        {"text": t, "score": s, "features": c.gate_features}
                        for (t, s), c in zip(outcome.sentences, kept, strict=True)
                    ],
                }
                out.write(json.dumps(record) + "\n")
                out.flush()
            if n % 25 == 0:
                click.echo(f"{n}/{len(questions)} questions", err=True)
    finally:
        if out:
            out.close()
    result = {
        "folder": str(folder),
        "generator": settings.generator,
        "top_k": top_k,
        "questions": len(outcomes),
        "at_threshold": summarise(outcomes, report_at),
        "curve": curve(outcomes, [round(0.05 * i, 2) for i in range(21)]),
    }
    if as_json:
        click.echo(json.dumps(result))
        return
    r = result["at_threshold"]
    click.echo(
        f"{folder.name} ({settings.generator}, {len(outcomes)} questions, top_k {top_k}, threshold {report_at}): "
        f"unanswerables declined {r['unanswerable_declined']}/{r['unanswerable']} ({r['declined_rate']}), "
        f"answerables answered {r['answerable_answered']}/{r['answerable']} ({r['answered_rate']}), "
        f"of which with a gold answer {r['answered_with_gold']} ({r['gold_rate_of_answered']}); "
        f"gate {r['gate_ms_mean']} ms of {r['answer_ms_mean']} ms per answer ({r['gate_share_of_latency']:.2%})"
    )
    click.echo("threshold  declined  answered  gold/answered")
    for row in result["curve"]:
        click.echo(
            f"{row['threshold']:9.2f}  {row['declined_rate']!s:>8}  {row['answered_rate']!s:>8}  "
            f"{row['gold_rate_of_answered']!s:>13}"
        )


def _ingest_for_eval(settings, embedder, docs_dir: Path):
    """A private database and index for an evaluation run, its corpus ingested in process with a
    progress bar; returns the session factory and the ingest report."""
    from ingest.pipeline import Ingestor
    from rag import jobs
    from rag.db.session import make_engine, make_sessionmaker, migrate

    engine = make_engine(settings)
    migrate(engine)
    factory = make_sessionmaker(engine)
    with factory() as session:
        job = jobs.create_job(session, str(docs_dir.resolve()), "eval", None, None, state=jobs.RUNNING)
    progress = ProgressBar(enabled=sys.stderr.isatty())
    try:
        report = Ingestor(settings, engine, factory, embedder, parse_workers=0).run(job.id, on_progress=progress.update)
    finally:
        progress.close()
    return factory, report
