"""`rag ingest`, `rag worker`, `rag check`, `rag reindex`, `rag jobs`: the admin's ingestion commands."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import click

from cli.runtime import ProgressBar, Runtime, fail, split_groups
from rag.errors import RagError
from rag.types import LABELS


@click.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--collection", default="default", show_default=True, help="Collection the documents belong to.")
@click.option("--groups", help="Comma-separated groups allowed to read these documents (default: keep existing).")
@click.option(
    "--label", type=click.Choice(LABELS), help="Sensitivity label (default: keep existing, new ones 'internal')."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the job's counts.")
@click.option("--queue", is_flag=True, help="Only enqueue the job for `rag worker`.")
@click.option(
    "--parse-workers",
    type=click.IntRange(0, 64),
    default=1,
    show_default=True,
    help="Parser processes (0 parses in-process, without crash isolation).",
)
@click.option("--strict", is_flag=True, help="Exit 3 when any file failed.")
def ingest(
    path: Path,
    collection: str,
    groups: str | None,
    label: str | None,
    as_json: bool,
    queue: bool,
    parse_workers: int,
    strict: bool,
) -> None:
    """Ingest a folder (recursively) or a file: only what changed is redone, deleted files are dropped."""
    from rag import jobs

    if not path.exists():
        fail(f"path not found: {path}")
    rt = Runtime()
    target = str(path.resolve())
    with rt.factory() as session:
        if queue:
            job = jobs.create_job(session, target, collection, split_groups(groups), label)
            click.echo(json.dumps({"job_id": job.id, "state": job.state}) if as_json else f"queued job {job.id}")
            return
        job = jobs.create_job(
            session,
            target,
            collection,
            split_groups(groups),
            label,
            state=jobs.RUNNING,
            worker_id=f"cli:{socket.gethostname()}:{os.getpid()}",
        )
    progress = ProgressBar(enabled=sys.stderr.isatty())
    try:
        report = rt.ingestor(parse_workers).run(job.id, on_progress=progress.update)
    except RagError as exc:
        progress.close()
        fail(str(exc))
    progress.close()
    if as_json:
        click.echo(json.dumps(report.as_json()))
    else:
        click.echo(
            f"job {report.job_id}: {report.files_seen} files seen, {report.files_indexed} indexed, "
            f"{report.files_unchanged} unchanged, {report.files_deleted} deleted, {report.files_failed} failed; "
            f"{report.chunks_added} chunks added, {report.chunks_removed} removed"
        )
        for error in report.errors:
            click.echo(f"  failed: {error.path}: {error.error}", err=True)
    if strict and report.files_failed:
        sys.exit(3)


@click.command()
@click.option("--once", is_flag=True, help="Exit when the queue is empty instead of waiting for more jobs.")
@click.option("--parse-workers", type=click.IntRange(0, 64), default=1, show_default=True)
def worker(once: bool, parse_workers: int) -> None:
    """Claim queued ingestion jobs from the database and run them (any number of workers may run)."""
    from ingest.worker import Worker

    rt = Runtime()
    Worker(rt.settings, rt.factory, rt.ingestor(parse_workers)).run(once=once)


@click.command()
def check() -> None:
    """Verify that the indexes and the database agree; exit 1 with the first problem if not."""
    from ingest.indexing import check as check_indexes

    rt = Runtime()
    problems = check_indexes(rt.factory, rt.settings.index_dir)
    if problems:
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        fail(problems[0] + more, code=1)
    click.echo("ok: indexes match the database")


@click.command()
def reindex() -> None:
    """Rebuild the indexes from the database (stored embeddings: nothing is re-embedded)."""
    from ingest.indexing import ann_policy, publish, stored_dim
    from ingest.vectors import plan_for
    from rag import model_registry as registry
    from rag.model_loader import ModelEmbedders

    rt = Runtime()
    dim = stored_dim(rt.factory) or rt.embedder.dim
    models = ModelEmbedders(rt.settings, rt.factory)  # the serving model's vectors, pinned as before

    def protect() -> frozenset[str]:
        with rt.factory() as session:
            return registry.protected_generations(session)

    try:
        result = publish(
            rt.engine,
            rt.factory,
            rt.settings.index_dir,
            dim,
            keep=rt.settings.keep_generations,
            rebuild=True,
            ann=ann_policy(rt.settings),
            vectors=lambda manifest: plan_for(rt.settings, rt.factory, models, manifest),
            protect=protect,
        )
    except RagError as exc:
        fail(str(exc))
    gen = result.manifest.generation if result.manifest else 0
    click.echo(f"ok: generation {gen} with {result.added} chunks")


@click.command()
@click.argument("job_id", type=int, required=False)
@click.option("--json", "as_json", is_flag=True)
def jobs(job_id: int | None, as_json: bool) -> None:
    """Show ingestion jobs (the newest 20) or one job with its failed files."""
    from rag import jobs as job_store

    rt = Runtime()
    with rt.factory() as session:
        try:
            if job_id is None:
                out = [job_store.describe(session, job, failed_limit=0).as_dict() for job in job_store.recent(session)]
                for item in out:
                    del item["errors"]  # the list shows counts; `rag jobs ID` names the failed files
            else:
                out = [job_store.describe(session, job_store.get_job(session, job_id), failed_limit=None).as_dict()]
        except RagError as exc:
            fail(str(exc))
    if as_json:
        click.echo(json.dumps(out[0] if job_id is not None else out))
        return
    for item in out:
        if item["kind"] != "ingest":  # tuning (steps) and re-embedding (chunks) jobs count their own progress
            click.echo(f"{item['job_id']:>6} {item['state']:<10} {item['done']}/{item['total']} {item['path']}")
            if item["error"]:
                click.echo(f"       failed: {item['error']}")
            continue
        click.echo(
            f"{item['job_id']:>6} {item['state']:<10} {item['files_seen']}/{item['files_total']} files "
            f"(+{item['files_indexed']} ={item['files_unchanged']} -{item['files_deleted']} "
            f"!{item['files_failed']}) {item['path']}"
        )
        for err in item.get("errors", []):
            click.echo(f"       failed: {err['path']}: {err['error']}")
