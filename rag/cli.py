"""The `rag` command: the composition root of the CLI processes (ingest, worker, check, reindex).

Heavy modules are imported inside the commands that need them, so `rag --help` stays instant.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
from pathlib import Path

import click

from rag.errors import RagError
from rag.labels import LABELS
from rag.settings import Settings


def _fail(message: str, code: int = 2) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


class _Runtime:
    """Settings, database and (lazily) the embedder for one CLI process."""

    def __init__(self) -> None:
        from pydantic import ValidationError

        try:
            self.settings = Settings()
        except ValidationError as exc:
            _fail(f"invalid settings: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}")
        from rag.db.session import make_engine, make_sessionmaker, migrate

        self.engine = make_engine(self.settings)
        migrate(self.engine)
        self.factory = make_sessionmaker(self.engine)
        self._embedder = None

    @property
    def embedder(self):  # noqa: ANN201
        if self._embedder is None:
            from rag.embedder import load_embedder

            self._embedder = load_embedder(self.settings)
        return self._embedder

    def ingestor(self, parse_workers: int):  # noqa: ANN201
        from ingest.pipeline import Ingestor

        return Ingestor(self.settings, self.engine, self.factory, self.embedder, parse_workers=parse_workers)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log progress details to stderr.")
def main(verbose: bool) -> None:
    """private-rag: private question answering over internal documents."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def _split_groups(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return sorted({g.strip() for g in value.split(",") if g.strip()})


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--collection", default="default", show_default=True, help="Collection the documents belong to.")
@click.option("--groups", help="Comma-separated groups allowed to read these documents (default: keep existing).")
@click.option("--label", type=click.Choice(LABELS), help="Sensitivity label (default: keep existing, new ones 'internal').")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the job's counts.")
@click.option("--queue", is_flag=True, help="Only enqueue the job for `rag worker`.")
@click.option("--parse-workers", type=click.IntRange(0, 64), default=1, show_default=True,
              help="Parser processes (0 parses in-process, without crash isolation).")
@click.option("--strict", is_flag=True, help="Exit 3 when any file failed.")
def ingest(path: Path, collection: str, groups: str | None, label: str | None, as_json: bool, queue: bool,
           parse_workers: int, strict: bool) -> None:
    """Ingest a folder (recursively) or a file: only what changed is redone, deleted files are dropped."""
    from ingest import jobs

    if not path.exists():
        _fail(f"path not found: {path}")
    rt = _Runtime()
    target = str(path.resolve())
    with rt.factory() as session:
        if queue:
            job = jobs.create_job(session, target, collection, _split_groups(groups), label)
            click.echo(json.dumps({"job_id": job.id, "state": job.state}) if as_json else f"queued job {job.id}")
            return
        job = jobs.create_job(session, target, collection, _split_groups(groups), label, state=jobs.RUNNING,
                              worker_id=f"cli:{socket.gethostname()}:{os.getpid()}")
    progress = _ProgressBar(enabled=sys.stderr.isatty())
    try:
        report = rt.ingestor(parse_workers).run(job.id, on_progress=progress.update)
    except RagError as exc:
        progress.close()
        _fail(str(exc))
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


class _ProgressBar:
    """Files and chunks on a terminal; silent when stderr is not one (logs, CI, --json pipes)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bar = None

    def update(self, report) -> None:  # noqa: ANN001
        if not self.enabled:
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=report.files_total, unit="file", desc="ingest", file=sys.stderr)
        self._bar.total = report.files_total
        self._bar.n = report.files_done
        self._bar.set_postfix(chunks=report.chunks_embedded, failed=report.files_failed, refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


@main.command()
@click.option("--once", is_flag=True, help="Exit when the queue is empty instead of waiting for more jobs.")
@click.option("--parse-workers", type=click.IntRange(0, 64), default=1, show_default=True)
def worker(once: bool, parse_workers: int) -> None:
    """Claim queued ingestion jobs from the database and run them (any number of workers may run)."""
    from ingest.worker import Worker

    rt = _Runtime()
    Worker(rt.settings, rt.factory, rt.ingestor(parse_workers)).run(once=once)


@main.command()
def check() -> None:
    """Verify that the indexes and the database agree; exit 1 with the first problem if not."""
    from ingest.indexing import check as check_indexes

    rt = _Runtime()
    problems = check_indexes(rt.factory, rt.settings.index_dir)
    if problems:
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        _fail(problems[0] + more, code=1)
    click.echo("ok: indexes match the database")


@main.command()
def reindex() -> None:
    """Rebuild the indexes from the database (stored embeddings: nothing is re-embedded)."""
    from ingest.indexing import ann_policy, publish, stored_dim

    rt = _Runtime()
    dim = stored_dim(rt.factory) or rt.embedder.dim
    result = publish(rt.engine, rt.factory, rt.settings.index_dir, dim, keep=rt.settings.keep_generations, rebuild=True,
                     ann=ann_policy(rt.settings))
    gen = result.manifest.generation if result.manifest else 0
    click.echo(f"ok: generation {gen} with {result.added} chunks")


@main.command()
@click.argument("job_id", type=int, required=False)
@click.option("--json", "as_json", is_flag=True)
def jobs(job_id: int | None, as_json: bool) -> None:
    """Show ingestion jobs (the newest 20) or one job with its failed files."""
    from sqlalchemy import select

    from rag.db.models import IngestionJob, JobFile

    rt = _Runtime()
    with rt.factory() as session:
        if job_id is None:
            rows = session.scalars(select(IngestionJob).order_by(IngestionJob.id.desc()).limit(20)).all()
        else:
            rows = [session.get(IngestionJob, job_id)]
            if rows[0] is None:
                _fail(f"no job {job_id}")
        out = []
        for job in rows:
            item = {
                "job_id": job.id, "state": job.state, "path": job.path, "collection": job.collection,
                "files_total": job.files_total, "files_seen": job.files_seen, "files_indexed": job.files_indexed,
                "files_unchanged": job.files_unchanged, "files_deleted": job.files_deleted,
                "files_failed": job.files_failed, "chunks_added": job.chunks_added,
                "chunks_removed": job.chunks_removed, "error": job.error,
            }
            if job_id is not None:
                failed = session.scalars(select(JobFile).where(JobFile.job_id == job.id, JobFile.status == "failed"))
                item["errors"] = [{"path": f.path, "error": f.error} for f in failed]
            out.append(item)
    if as_json:
        click.echo(json.dumps(out[0] if job_id is not None else out))
        return
    for item in out:
        click.echo(f"{item['job_id']:>6} {item['state']:<10} {item['files_seen']}/{item['files_total']} files "
                   f"(+{item['files_indexed']} ={item['files_unchanged']} -{item['files_deleted']} "
                   f"!{item['files_failed']}) {item['path']}")
        for err in item.get("errors", []):
            click.echo(f"       failed: {err['path']}: {err['error']}")


@main.command()
@click.option("--host", help="Bind address (default RAG_API_HOST, 127.0.0.1).")
@click.option("--port", type=int, help="Port (default RAG_API_PORT, 8000).")
def serve(host: str | None, port: int | None) -> None:
    """Serve the HTTP API."""
    import uvicorn

    from api.app import create_app

    rt = _Runtime()
    try:
        app = create_app(rt.settings)
        app.state.services.warm()
    except RagError as exc:
        _fail(str(exc))
    host, port = host or rt.settings.api_host, port or rt.settings.api_port
    click.echo(f"serving on http://{host}:{port} (OpenAPI description: GET /openapi.json with a key)", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


@main.command()
@click.argument("question")
@click.option("--top-k", type=click.IntRange(1, 50), help="Passages given to the model (default RAG_DEFAULT_TOP_K).")
@click.option("--collection", help="Only this collection.")
@click.option("--json", "as_json", is_flag=True, help="Print the same JSON object as POST /v1/query.")
@click.option("--as", "as_user", help="Answer from what this user may read (default: an admin's view, all documents).")
def ask(question: str, top_k: int | None, collection: str | None, as_json: bool, as_user: str | None) -> None:
    """Answer a question from the documents, with citations (the same path as POST /v1/query);
    written to the audit log like an API request."""
    import time
    import uuid

    from api.query_routes import answer_json, audit_answer, check_question
    from rag.access import access_scope
    from rag.audit import AuditEntry
    from rag.search import SearchFilters
    from rag.service import build_answerer

    rt = _Runtime()
    audit_log = _audit_log(rt)
    request_id = uuid.uuid4().hex
    started = time.perf_counter()
    try:
        principal = _principal(rt, as_user)
        question = check_question(question, rt.settings)
        answerer = build_answerer(rt.settings, rt.factory, rt.embedder)
        final = answerer.answer(question, top_k=top_k or rt.settings.default_top_k,
                                filters=SearchFilters(collection=collection), access=access_scope(principal),
                                principal=principal)
        # the CLI reads documents too: it is audited like the API, and prints nothing it could not record
        entry = AuditEntry(request_id=request_id, route="cli:ask", status=200, principal=principal.name,
                           role=principal.role, groups=list(principal.groups), question=question)
        audit_answer(entry, final)
        entry.latency_ms = (time.perf_counter() - started) * 1000
        audit_log.append(entry)
    except RagError as exc:
        _fail(str(exc))
    if as_json:
        click.echo(json.dumps(answer_json(final, request_id), ensure_ascii=False))
        return
    click.echo(final.answer)
    if final.notice:
        click.echo(f"({final.notice})")
    label = "Sources" if final.grounded else "Closest passages"
    click.echo(f"\n{label}:")
    for c in final.citations:
        where = f", page {c.page}" if c.page else ""
        click.echo(f"  [{c.n}] {c.path}{where}: \"{c.quote}\"")


@main.command()
@click.argument("query")
@click.option("--top-k", type=click.IntRange(1, 100), default=5, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.option("--as", "as_user", help="Search what this user may read (default: an admin's view, all documents).")
def search(query: str, top_k: int, as_json: bool, as_user: str | None) -> None:
    """Hybrid (dense + BM25) search over the live index generation; prints ranked passages.
    Written to the audit log like an API search."""
    import time
    import uuid

    from api.query_routes import audit_passages
    from rag.access import access_scope
    from rag.audit import AuditEntry
    from rag.search import Searcher
    from rag.service import fusion_params

    rt = _Runtime()
    audit_log = _audit_log(rt)
    started = time.perf_counter()
    try:
        principal = _principal(rt, as_user)
        found = Searcher(rt.embedder, rt.factory, rt.settings.index_dir, fusion_params(rt.settings),
                           nprobe=rt.settings.ann_nprobe).search(
            query, top_k, access=access_scope(principal))
        entry = AuditEntry(request_id=uuid.uuid4().hex, route="cli:search", status=200, principal=principal.name,
                           role=principal.role, groups=list(principal.groups), question=query)
        audit_passages(entry, found.passages)
        entry.latency_ms = (time.perf_counter() - started) * 1000
        audit_log.append(entry)
    except RagError as exc:
        _fail(str(exc))
    results = [{"chunk_id": p.chunk_id, "document_id": p.document_id, "path": p.path, "title": p.title,
                "section": p.section, "pages": p.pages, "score": round(p.score, 6), "text": p.text}
               for p in found.passages]
    if as_json:
        click.echo(json.dumps({"results": results}))
        return
    for n, r in enumerate(results, 1):
        where = f" p.{','.join(map(str, r['pages']))}" if r["pages"] else ""
        click.echo(f"[{n}] {r['path']}{where} - {r['section'] or r['title']}")
        click.echo("    " + " ".join(r["text"].split())[:300])


def _principal(rt: _Runtime, name: str | None):  # noqa: ANN202
    """The CLI runs with the machine's (admin) access unless `--as USER` narrows it to that user's."""
    from rag.auth.keys import principal_of
    from rag.auth.principal import Principal

    if name is None:
        return Principal(name="cli", role="admin", via="cli")
    with rt.factory() as session:
        return principal_of(session, name)


@main.group()
def route() -> None:
    """The escalation router: which model would answer a question, and why."""


@route.command("explain")
@click.argument("question")
@click.option("--as", "as_user", help="Decide for this user (default: the CLI operator, who is in no group).")
@click.option("--top-k", type=click.IntRange(1, 50), help="Passages retrieved (default RAG_DEFAULT_TOP_K).")
@click.option("--collection", help="Only this collection.")
@click.option("--json", "as_json", is_flag=True, help="Print the decision as JSON (same as POST /v1/route/explain).")
def route_explain(question: str, as_user: str | None, top_k: int | None, collection: str | None, as_json: bool) -> None:
    """Dry-run the escalation policy: retrieve as the user, decide, send nothing, generate nothing."""
    from api.query_routes import check_question
    from rag.search import SearchFilters
    from rag.service import build_answerer, explain_route

    rt = _Runtime()
    try:
        principal = _principal(rt, as_user)
        question = check_question(question, rt.settings)
        answerer = build_answerer(rt.settings, rt.factory, rt.embedder, generator=_NoGenerator())
        result = explain_route(answerer, question, principal, top_k=top_k or rt.settings.default_top_k,
                               filters=SearchFilters(collection=collection))
    except RagError as exc:
        _fail(str(exc))
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False))
        return
    decision = result["route"]
    state = "enabled" if result["escalation_enabled"] else "disabled"
    click.echo(f"target: {decision['target']}  (rule: {decision['rule']}; escalation {state})")
    click.echo(f"reason: {decision['reason']}")
    for key in ("detectors", "labels", "withheld"):
        if decision.get(key):
            click.echo(f"{key}: {decision[key]}")
    for p in result["passages"]:
        mark = "send" if p["would_send"] else "keep"
        click.echo(f"  [{p['rank']}] {mark} {p['label']:<12} {p['path']}")


class _NoGenerator:
    """`rag route explain` decides only: no model is loaded."""

    backend = "none"
    model = "none"

    def stream(self, prompt, max_tokens, usage):  # noqa: ANN001, ANN201
        raise RagError("route explain does not generate")

    def ready(self) -> bool:
        return False


@main.group()
def users() -> None:
    """Users (employee, admin, auditor), their groups and API keys."""


@users.command(name="add")
@click.argument("name")
@click.option("--role", type=click.Choice(["employee", "admin", "auditor"]), required=True)
@click.option("--groups", default="", help="Comma-separated groups (what documents the user may read).")
@click.option("--no-key", is_flag=True, help="Do not create an API key now.")
def users_add(name: str, role: str, groups: str, no_key: bool) -> None:
    """Create a user and print its first API key (shown once, stored only as a hash)."""
    from rag.auth import keys

    rt = _Runtime()
    try:
        with rt.factory() as session:
            user = keys.add_user(session, name, role, _split_groups(groups) or [])
            plaintext = None if no_key else keys.create_key(session, user)[1]
            session.commit()
    except RagError as exc:
        _fail(str(exc))
    click.echo(f"created {role} '{name}'" + (f"; API key (shown once): {plaintext}" if plaintext else ""), err=True)
    if plaintext:
        click.echo(plaintext)


@users.command(name="list")
def users_list() -> None:
    from sqlalchemy import select

    from rag.db.models import User

    rt = _Runtime()
    with rt.factory() as session:
        for user in session.scalars(select(User).order_by(User.name)):
            state = " (disabled)" if user.disabled else ""
            click.echo(f"{user.name:<30} {user.role:<9} {','.join(sorted(g.name for g in user.groups))}{state}")


@users.command(name="set")
@click.argument("name")
@click.option("--groups", help="Replace the user's groups (comma-separated; '' for none).")
@click.option("--disable/--enable", default=None, help="Disable or re-enable the user.")
def users_set(name: str, groups: str | None, disable: bool | None) -> None:
    """Change a user's groups or disable them: effective on their next request."""
    from rag.auth import keys

    rt = _Runtime()
    try:
        with rt.factory() as session:
            user = keys.get_user(session, name)
            if groups is not None:
                user.groups = keys.groups_named(session, _split_groups(groups) or [])
            if disable is not None:
                user.disabled = disable
            session.commit()
    except RagError as exc:
        _fail(str(exc))
    click.echo(f"ok: {name}")


@users.command(name="key")
@click.argument("name")
@click.option("--label", help="What the key is for.")
def users_key(name: str, label: str | None) -> None:
    """Create another API key for a user (printed once)."""
    from rag.auth import keys

    rt = _Runtime()
    try:
        with rt.factory() as session:
            _, plaintext = keys.create_key(session, keys.get_user(session, name), label)
            session.commit()
    except RagError as exc:
        _fail(str(exc))
    click.echo(plaintext)


@users.command(name="revoke-key")
@click.argument("key_id", type=int)
def users_revoke_key(key_id: int) -> None:
    """Revoke an API key by id (see GET /v1/keys)."""
    from rag.auth import keys

    rt = _Runtime()
    try:
        with rt.factory() as session:
            keys.revoke_key(session, key_id)
            session.commit()
    except RagError as exc:
        _fail(str(exc))
    click.echo(f"ok: key {key_id} revoked")


@main.group()
def audit() -> None:
    """The tamper-evident audit log."""


def _audit_log(rt: _Runtime):  # noqa: ANN202
    from rag.audit import AuditLog, resolve_key

    try:
        return AuditLog(rt.factory, resolve_key(rt.settings))
    except RagError as exc:
        _fail(str(exc))


@audit.command(name="verify")
@click.option("--checkpoint", "checkpoint_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A checkpoint from `rag audit checkpoint`: also detects truncation and rewrites.")
@click.option("--json", "as_json", is_flag=True)
def audit_verify(checkpoint_file: Path | None, as_json: bool) -> None:
    """Check the whole chain; exit 1 naming the first bad record."""
    rt = _Runtime()
    checkpoint = None
    if checkpoint_file is not None:
        try:
            checkpoint = json.loads(checkpoint_file.read_text())
        except ValueError:
            _fail("checkpoint file is not JSON", code=1)
    result = _audit_log(rt).verify(checkpoint)
    if as_json:
        click.echo(json.dumps(result.as_json()))
    elif result.ok:
        click.echo(f"ok: {result.records} records, head {result.head_seq} {result.head_hash}")
    else:
        click.echo(f"error: record {result.first_bad_seq}: {result.reason}", err=True)
    sys.exit(0 if result.ok else 1)


@audit.command(name="checkpoint")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
def audit_checkpoint(out: Path) -> None:
    """Write the signed (size, head hash) of the log to FILE; keep it outside the database."""
    rt = _Runtime()
    checkpoint = _audit_log(rt).checkpoint()
    out.write_text(json.dumps(checkpoint, indent=2) + "\n")
    click.echo(f"ok: checkpoint at record {checkpoint['head_seq']} written to {out}")


@audit.command(name="archive")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="JSON-lines file to create.")
@click.option("--before", help="ISO time; default: now minus RAG_AUDIT_RETENTION_DAYS.")
def audit_archive(out: Path, before: str | None) -> None:
    """Move records older than the retention period to FILE; the archival is itself recorded.
    Run it as the database owner (the service's own role cannot delete audit rows)."""
    import datetime as dt

    rt = _Runtime()
    if before is None:
        if not rt.settings.audit_retention_days:
            _fail("nothing to archive: give --before or set RAG_AUDIT_RETENTION_DAYS")
        before = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=rt.settings.audit_retention_days)).isoformat()
    if out.exists():
        _fail(f"{out} exists")
    try:
        summary = _audit_log(rt).archive(before, out)
    except RagError as exc:
        _fail(str(exc), code=1)
    click.echo(json.dumps(summary))


@main.group()
def llm() -> None:
    """The packaged open-weight model (SmolLM2-135M-Instruct)."""


@llm.command(name="export")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
def llm_export(out: Path) -> None:
    """Write the packaged model as a Hugging Face folder, e.g. for vLLM (compose mounts ./models)."""
    from rag.generators.embedded import convert_gguf, packaged_gguf

    if out.exists() and any(out.iterdir()):
        _fail(f"{out} exists and is not empty")
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        convert_gguf(packaged_gguf(), out)
    except RagError as exc:
        _fail(str(exc))
    click.echo(f"ok: {out}")


@main.group(name="eval")
def eval_group() -> None:
    """Measure retrieval quality on standard data sets."""


@eval_group.command(name="beir")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--split", default="test", show_default=True, help="qrels split to score (tune on train, report on test).")
@click.option("--retriever", type=click.Choice(["hybrid", "dense", "bm25"]), default="hybrid", show_default=True)
@click.option("--work-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the evaluation's own database and indexes live (default: DATA_DIR/eval/<folder name>). "
                   "Kept between runs: a second run re-ingests nothing.")
@click.option("--limit", type=int, hidden=True, help="Only the first N documents (smoke tests).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: ndcg@10, recall@100, mrr@10, queries, retriever.")
def eval_beir(folder: Path, split: str, retriever: str, work_dir: Path | None, limit: int | None, as_json: bool) -> None:
    """Ingest a BEIR folder through the real ingestion path and print nDCG@10, Recall@100, MRR@10."""
    from sqlalchemy import select

    from indexes.snapshot import load_snapshot
    from ingest import jobs
    from rag.db.models import Chunk, Document
    from rag.db.session import make_engine, make_sessionmaker, migrate
    from rag.evaluation import evaluate, load_beir, write_corpus
    from rag.retrieval import HybridRetriever
    from rag.service import fusion_params

    rt = _Runtime()
    try:
        beir = load_beir(folder, split)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        _fail(str(exc))
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
    progress = _ProgressBar(enabled=sys.stderr.isatty())
    Ingestor(settings, engine, factory, rt.embedder, parse_workers=0).run(job.id, on_progress=progress.update)
    progress.close()
    with factory() as session:
        doc_of_chunk = {cid: Path(path).stem for cid, path in
                        session.execute(select(Chunk.id, Document.path).join(Document))}
    snapshot = load_snapshot(settings.index_dir)
    search = HybridRetriever(rt.embedder, snapshot.vector, snapshot.keyword, fusion_params(rt.settings))
    depth = max(300, rt.settings.fusion_depth)
    result = evaluate(beir, lambda q: [h.chunk_id for h in search.search(q, depth, mode=retriever)], doc_of_chunk)
    result["retriever"] = retriever
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"{folder.name} ({split}, {result['queries']} queries, {retriever}): nDCG@10 {result['ndcg@10']:.4f}  "
               f"Recall@100 {result['recall@100']:.4f}  MRR@10 {result['mrr@10']:.4f}")


if __name__ == "__main__":
    main()
