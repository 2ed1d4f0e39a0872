"""`rag serve`, `rag ask`, `rag search`, `rag route explain`: the query side from the command line.

Asking and searching read documents, so they are audited like the API: nothing is printed that
could not be recorded.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import click

from cli.runtime import Runtime, fail
from rag.errors import RagError


@click.command()
@click.option("--host", help="Bind address (default RAG_API_HOST, 127.0.0.1).")
@click.option("--port", type=int, help="Port (default RAG_API_PORT, 8000).")
def serve(host: str | None, port: int | None) -> None:
    """Serve the HTTP API."""
    import uvicorn

    from api.app import create_app

    rt = Runtime()
    try:
        app = create_app(rt.settings)
        app.state.services.warm()
    except RagError as exc:
        fail(str(exc))
    host, port = host or rt.settings.api_host, port or rt.settings.api_port
    click.echo(f"serving on http://{host}:{port} (OpenAPI description: GET /openapi.json with a key)", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


@click.command()
@click.argument("question")
@click.option("--top-k", type=click.IntRange(1, 50), help="Passages given to the model (default RAG_DEFAULT_TOP_K).")
@click.option("--collection", help="Only this collection.")
@click.option("--json", "as_json", is_flag=True, help="Print the same JSON object as POST /v1/query.")
@click.option("--as", "as_user", help="Answer from what this user may read (default: an admin's view, all documents).")
def ask(question: str, top_k: int | None, collection: str | None, as_json: bool, as_user: str | None) -> None:
    """Answer a question from the documents, with citations (the same path as POST /v1/query);
    written to the audit log like an API request."""
    from api.query_routes import answer_json
    from rag.access import access_scope
    from rag.audit import AuditEntry, record_answer
    from rag.service import build_answerer, check_question
    from rag.types import SearchFilters

    rt = Runtime()
    audit_log = rt.audit_log()
    request_id = uuid.uuid4().hex
    started = time.perf_counter()
    try:
        principal = rt.principal(as_user)
        question = check_question(question, rt.settings)
        answerer = build_answerer(rt.settings, rt.factory, rt.embedder)
        final = answerer.answer(
            question,
            top_k=top_k or rt.settings.default_top_k,
            filters=SearchFilters(collection=collection),
            access=access_scope(principal),
            principal=principal,
        )
        entry = AuditEntry(
            request_id=request_id,
            route="cli:ask",
            status=200,
            principal=principal.name,
            role=principal.role,
            groups=list(principal.groups),
            question=question,
        )
        record_answer(entry, final)
        entry.latency_ms = (time.perf_counter() - started) * 1000
        audit_log.append(entry)
    except RagError as exc:
        fail(str(exc))
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
        click.echo(f'  [{c.n}] {c.path}{where}: "{c.quote}"')


@click.command()
@click.argument("query")
@click.option("--top-k", type=click.IntRange(1, 100), default=5, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.option("--as", "as_user", help="Search what this user may read (default: an admin's view, all documents).")
def search(query: str, top_k: int, as_json: bool, as_user: str | None) -> None:
    """Hybrid (dense + BM25) search over the live index generation; prints ranked passages.
    Written to the audit log like an API search."""
    from rag.access import access_scope
    from rag.audit import AuditEntry, record_passages
    from rag.service import build_searcher, check_question

    rt = Runtime()
    audit_log = rt.audit_log()
    started = time.perf_counter()
    try:
        principal = rt.principal(as_user)
        query = check_question(query, rt.settings)
        found = build_searcher(rt.settings, rt.factory, rt.embedder).search(
            query, top_k, access=access_scope(principal)
        )
        entry = AuditEntry(
            request_id=uuid.uuid4().hex,
            route="cli:search",
            status=200,
            principal=principal.name,
            role=principal.role,
            groups=list(principal.groups),
            question=query,
        )
        record_passages(entry, found.passages)
        entry.latency_ms = (time.perf_counter() - started) * 1000
        audit_log.append(entry)
    except RagError as exc:
        fail(str(exc))
    results = [
        {
            "chunk_id": p.chunk_id,
            "document_id": p.document_id,
            "path": p.path,
            "title": p.title,
            "section": p.section,
            "pages": p.pages,
            "score": round(p.score, 6),
            "text": p.text,
        }
        for p in found.passages
    ]
    if as_json:
        click.echo(json.dumps({"results": results}))
        return
    for n, r in enumerate(results, 1):
        where = f" p.{','.join(map(str, r['pages']))}" if r["pages"] else ""
        click.echo(f"[{n}] {r['path']}{where} - {r['section'] or r['title']}")
        click.echo("    " + " ".join(r["text"].split())[:300])


@click.group()
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
    from rag.service import build_answerer, check_question, explain_route
    from rag.types import SearchFilters

    rt = Runtime()
    try:
        principal = rt.principal(as_user)
        question = check_question(question, rt.settings)
        answerer = build_answerer(rt.settings, rt.factory, rt.embedder, generator=_NoGenerator())
        result = explain_route(
            answerer,
            question,
            principal,
            top_k=top_k or rt.settings.default_top_k,
            filters=SearchFilters(collection=collection),
        )
    except RagError as exc:
        fail(str(exc))
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

    def stream(self, prompt: object, max_tokens: int, usage: object) -> Iterator[str]:
        raise RagError("route explain does not generate")

    def ready(self) -> bool:
        return False
