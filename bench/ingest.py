"""Ingestion benchmark: SciFact through the real pipeline vs. the raw embedder on the same chunks.

    python bench/ingest.py [--limit N] [--parse-workers 1] [--json]

Writes each abstract as a text file (title + text, as the published figures index them), ingests the
folder with the real pipeline into a fresh SQLite database, then embeds the very same chunk texts
with the bare embedder. Prints end-to-end docs/s, embedder docs/s, their ratio (goal >= 0.9),
the time split and peak RSS. Not a test: numbers vary with the machine, compare within one run.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT_CORPUS = REPO.parent / "shared" / "eval" / "scifact" / "corpus.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--limit", type=int, default=None, help="first N documents only")
    parser.add_argument("--parse-workers", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from sqlalchemy import func, select

    from ingest.pipeline import Ingestor
    from rag import jobs
    from rag.db.models import Chunk, JobFile
    from rag.db.session import make_engine, make_sessionmaker, migrate
    from rag.embedder import load_embedder
    from rag.evaluation import write_corpus
    from rag.settings import Settings

    with tempfile.TemporaryDirectory(prefix="rag-bench-") as tmp:
        folder = Path(tmp) / "scifact"
        folder.mkdir()
        docs = write_corpus(args.corpus, folder, args.limit)
        settings = Settings(data_dir=Path(tmp) / "data", _env_file=None)
        engine = make_engine(settings)
        migrate(engine)
        factory = make_sessionmaker(engine)
        embedder = load_embedder(settings)
        embedder.embed(["warm-up"])
        ingestor = Ingestor(settings, engine, factory, embedder, parse_workers=args.parse_workers)
        with factory() as session:
            job = jobs.create_job(session, str(folder), "scifact", None, None, state=jobs.RUNNING)

        started = time.perf_counter()
        report = ingestor.run(job.id)
        pipeline_s = time.perf_counter() - started

        with factory() as session:
            texts = list(session.scalars(select(Chunk.text).order_by(Chunk.id)))
            parse_chunk_s = session.scalar(select(func.sum(JobFile.seconds)).where(JobFile.job_id == job.id)) or 0.0

        # Baseline: the bare embedder on exactly the chunk texts the pipeline embedded, same slicing.
        started = time.perf_counter()
        for i in range(0, len(texts), 256):
            embedder.embed(texts[i : i + 256])
        embed_only_s = time.perf_counter() - started

    result = {
        "docs": docs,
        "chunks": len(texts),
        "files_failed": report.files_failed,
        "embedder_dtype": embedder.dtype,
        "pipeline_s": round(pipeline_s, 2),
        "pipeline_docs_per_s": round(docs / pipeline_s, 2),
        "embedder_only_s": round(embed_only_s, 2),
        "embedder_docs_per_s": round(docs / embed_only_s, 2),
        "ratio": round(embed_only_s / pipeline_s, 3),
        "split_s": {
            "hash": round(ingestor.timings["hash"], 2),
            "parse_and_chunk_in_workers": round(parse_chunk_s, 2),
            "waiting_for_parser": round(ingestor.timings["parse_wait"], 2),
            "embed": round(ingestor.timings["embed"], 2),
            "db_write": round(ingestor.timings["write"], 2),
            "index_publish": round(ingestor.timings["publish"], 2),
        },
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_rss_parser_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"SciFact ingest: {docs} docs -> {len(texts)} chunks ({report.files_failed} failed), embedder {embedder.dtype}"
    )
    print(f"  pipeline        {result['pipeline_s']:>8.1f} s  {result['pipeline_docs_per_s']:>7.2f} docs/s")
    print(f"  embedder alone  {result['embedder_only_s']:>8.1f} s  {result['embedder_docs_per_s']:>7.2f} docs/s")
    print(f"  ratio pipeline/embedder throughput: {result['ratio']:.3f} (goal >= 0.9)")
    print("  split (s): " + ", ".join(f"{k} {v}" for k, v in result["split_s"].items()))
    print(f"  peak RSS: main {result['peak_rss_mib']} MiB, parser processes {result['peak_rss_parser_mib']} MiB")


if __name__ == "__main__":
    main()
