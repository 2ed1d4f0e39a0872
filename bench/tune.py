"""Before/after table of embedder tuning: each collection scored with the untuned model, tuned on its
own ingested chunks (no labels), re-embedded with the candidate and scored again, in one run.

    python bench/tune.py [FOLDER ...] [--work DIR] [--max-minutes N] [--max-examples N] [--heldout] [--json]

FOLDER is a BEIR folder (default: ../shared/eval/scifact, med, cacm). Scoring is the product's own
path: `rag eval beir FOLDER --work-dir W --retriever dense|hybrid --json` (real ingestion, real
indexes, real hybrid search), run once with the packaged model (W = DIR/<name>/base) and once with
the candidate (RAG_EMBEDDER_MODEL_PATH, W = DIR/<name>/tuned, so everything is embedded again: its
ingest time is the re-embedding time). Training reads the chunks of the base ingestion, as
`rag tune embedder` does; the qrels and queries are used for scoring only. Work dirs are kept: a
second run re-ingests nothing for the base model (delete DIR/<name>/tune and /tuned to retrain).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _common import REPO

EVAL = REPO.parent / "shared" / "eval"
DEFAULT = [EVAL / "scifact", EVAL / "med", EVAL / "cacm"]


def rag_eval(folder: Path, work: Path, retriever: str, model: Path | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "RAG_EMBEDDER_MODEL_PATH"}
    if model is not None:
        env["RAG_EMBEDDER_MODEL_PATH"] = str(model)
    env["PYTHONPATH"] = str(REPO)
    cmd = [sys.executable, "-m", "cli", "eval", "beir", str(folder), "--work-dir", str(work)]
    out = subprocess.run(
        [*cmd, "--retriever", retriever, "--json"], env=env, cwd=REPO, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        sys.exit(f"rag eval beir failed on {folder} ({retriever}): {out.stderr.strip()[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def ingested_chunks(work: Path) -> list:
    """The chunks of an evaluation's private database, keyed by document (file stem = BEIR id)."""
    from sqlalchemy import select

    from rag.db.models import Chunk, Document
    from rag.db.session import make_engine, make_sessionmaker
    from rag.settings import Settings
    from rag.tuning.trainer import TrainingChunk

    settings = Settings().model_copy(update={"data_dir": work, "database_url": None})
    with make_sessionmaker(make_engine(settings))() as session:
        rows = session.execute(select(Chunk.id, Chunk.text, Document.path).join(Document).order_by(Chunk.id))
        return [TrainingChunk(Path(path).stem, int(cid), text) for cid, text, path in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path, default=DEFAULT)
    parser.add_argument("--work", type=Path, default=REPO / "data" / "tune")
    parser.add_argument("--max-minutes", type=float, default=30.0, help="tuning budget per collection")
    parser.add_argument("--max-examples", type=int, help="pseudo-queries per epoch (default: TuneConfig's)")
    parser.add_argument("--heldout", action="store_true", help="also the self-supervised held-out score")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from rag.settings import Settings
    from rag.tuning.heldout import heldout_eval
    from rag.tuning.trainer import TuneConfig, tune_embedder

    base_model = Path(Settings(_env_file=None).resolved_model_path)
    knobs = {"max_minutes": args.max_minutes}
    if args.max_examples:
        knobs["max_examples"] = args.max_examples
    config = TuneConfig(**knobs)
    table = {}
    for folder in args.folders:
        name = folder.resolve().name
        work = args.work / name
        row: dict = {}
        for retriever in ("dense", "hybrid"):
            r = rag_eval(folder, work / "base", retriever, None)
            row[f"base_{retriever}"] = r["ndcg@10"]
            row.setdefault("base_ingest_s", r["ingest_s"])
            row["chunks"] = r["chunks"]
        chunks = ingested_chunks(work / "base")

        def progress(step: int, total: int, name: str = name) -> None:
            if step % 10 == 0 or step == total:
                print(f"{name}: step {step}/{total}", file=sys.stderr, flush=True)

        started = time.perf_counter()
        result = tune_embedder(base_model, chunks, work / "tune", config, progress)
        row.update(
            tune_s=round(time.perf_counter() - started, 1),
            tune_wall_s_total=result.wall_s,
            steps=result.steps,
            examples=result.examples,
            completed=result.completed,
        )
        for retriever in ("dense", "hybrid"):
            r = rag_eval(folder, work / "tuned", retriever, result.model_dir)
            row[f"tuned_{retriever}"] = r["ndcg@10"]
            row.setdefault("reembed_s", r["ingest_s"])
            row.setdefault("reembedded_chunks", r["chunks_embedded"])
        if args.heldout:
            row["heldout_base"] = heldout_eval(base_model, chunks)["ndcg@10"]
            row["heldout_tuned"] = heldout_eval(result.model_dir, chunks)["ndcg@10"]
        table[name] = row
        print(f"{name}: {json.dumps(row)}", file=sys.stderr, flush=True)
    out = {
        "method": result.method,
        "settings": result.settings,
        "load_average": os.getloadavg(),
        "collections": table,
    }
    if args.json:
        print(json.dumps(out))
        return
    print(f"method {out['method']}; load average {', '.join(f'{x:.2f}' for x in out['load_average'])}")
    print("collection  chunks  dense before  after   hybrid before  after   tune s  steps  re-embed s")
    for name, r in table.items():
        print(
            f"{name:<10} {r['chunks']:>7}  {r['base_dense']:>12.4f} {r['tuned_dense']:.4f}  "
            f"{r['base_hybrid']:>13.4f} {r['tuned_hybrid']:.4f}  {r['tune_s']:>6.0f}  {r['steps']:>5}  "
            f"{r['reembed_s']:>10.1f}"
        )


if __name__ == "__main__":
    main()
