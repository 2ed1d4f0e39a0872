"""`rag models ...` and `rag tune embedder`: the embedder registry, its evaluation gate, promotion
(re-embedding into a new generation) and rollback. Promotions and rollbacks are audit records."""

from __future__ import annotations

import json
import os
import socket
import sys
import uuid
from pathlib import Path

import click

from cli.runtime import Runtime, fail
from rag.errors import RagError

MODEL_ID = click.IntRange(1, 2**31 - 1)


class StepBar:
    """done/total on a terminal (steps or chunks); silent otherwise."""

    def __init__(self, desc: str, unit: str) -> None:
        self.enabled = sys.stderr.isatty()
        self.desc, self.unit = desc, unit
        self._bar = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit=self.unit, desc=self.desc, file=sys.stderr)
        self._bar.total, self._bar.n = total, done
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _audit(rt: Runtime, action: str, status: int, target: dict, error: str | None = None) -> None:
    """One audit record per promotion, rollback or retirement asked on the host (the API's are the gate's)."""
    from rag.audit import AuditEntry

    detail: dict = {"target": target, "via": "cli"}
    if error:
        detail["error"] = error
    rt.audit_log().append(
        AuditEntry(
            request_id=uuid.uuid4().hex,
            route=f"cli:models {action}",
            status=status,
            principal="operator",
            role="admin",
            detail=detail,
        )
    )


def _worker_id() -> str:
    return f"cli:{socket.gethostname()}:{os.getpid()}"


def _abandoned(worker_id: str | None) -> bool:
    """A job started by a `rag` process on this host that is no longer running (killed)."""
    parts = (worker_id or "").split(":")
    if len(parts) != 3 or parts[0] != "cli" or parts[1] != socket.gethostname() or not parts[2].isdigit():
        return False
    try:
        os.kill(int(parts[2]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _print_model(model: dict) -> None:
    click.echo(
        f"{model['id']:>4} {model['state']:<9} {model['sha256'][:12]} {model['method']:<14} "
        f"parent {model['parent_id'] or '-':<4} by {model['created_by']}"
        + (f", promoted by {model['promoted_by']}" if model["promoted_by"] else "")
    )
    for name, entry in sorted(model["evaluation"].items()):
        click.echo(
            f"       {name}: ndcg@10 {entry['candidate'].get('ndcg@10', 0):.4f} vs active {entry['active_id']} "
            f"{entry['active'].get('ndcg@10', 0):.4f} (gain {entry['gain']:+.4f})"
        )


@click.group()
def models() -> None:
    """The embedder model registry: versions, evaluation, promotion and rollback."""


@models.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of models.")
def models_list(as_json: bool) -> None:
    """Every embedder version with its state and evaluations."""
    from rag import model_registry as registry

    rt = Runtime()
    try:
        with rt.factory() as session:
            out = [registry.describe(m) for m in registry.list_models(session, rt.settings)]
    except RagError as exc:
        fail(str(exc))
    if as_json:
        click.echo(json.dumps(out))
        return
    for model in out:
        _print_model(model)


@models.command(name="show")
@click.argument("model_id", type=MODEL_ID)
@click.option("--json", "as_json", is_flag=True)
def models_show(model_id: int, as_json: bool) -> None:
    """One model: lineage, weights' SHA-256, training data, method and settings, evaluations."""
    from rag import model_registry as registry

    rt = Runtime()
    try:
        with rt.factory() as session:
            registry.list_models(session, rt.settings)
            out = registry.describe(registry.get_model(session, model_id))
    except RagError as exc:
        fail(str(exc))
    click.echo(json.dumps(out, indent=None if as_json else 2))


@models.command(name="evaluate")
@click.argument("model_id", type=MODEL_ID)
@click.option(
    "--beir",
    "beir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A labelled BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv) to score on as well.",
)
@click.option("--split", default="test", show_default=True, help="qrels split of --beir.")
@click.option("--json", "as_json", is_flag=True)
def models_evaluate(model_id: int, beir: Path | None, split: str, as_json: bool) -> None:
    """Score a model against the active one: on held-out documents of the data it was trained on
    (self-supervised queries), and on a labelled BEIR folder when given. Stored for the gate."""
    from ingest.tune_job import heldout_gate, training_chunks
    from rag import model_registry as registry
    from rag.model_loader import ModelEmbedders

    rt = Runtime()
    results = {}
    try:
        with rt.factory() as session:
            model = registry.get_model(session, model_id)
            if beir is not None:
                from ingest.model_eval import evaluate_on_beir

                models_ = ModelEmbedders(rt.settings, rt.factory)
                results[f"beir:{beir.name}:{split}"] = evaluate_on_beir(
                    rt.settings, session, models_, model, beir, split
                )
            else:
                chunks = training_chunks(session, (model.trained_on or {}).get("collection"))
                if not chunks:
                    fail("no ingested chunks to hold out")
                results["heldout"] = heldout_gate(session, rt.settings, model, chunks)
    except (RagError, FileNotFoundError, ValueError, KeyError) as exc:
        fail(str(exc))
    if as_json:
        click.echo(json.dumps(results))
        return
    for name, entry in results.items():
        click.echo(
            f"{name}: model {model_id} ndcg@10 {entry['candidate'].get('ndcg@10', 0):.4f}, active "
            f"{entry['active_id']} {entry['active'].get('ndcg@10', 0):.4f} (gain {entry['gain']:+.4f})"
        )


@models.command(name="promote")
@click.argument("model_id", type=MODEL_ID)
@click.option("--force", is_flag=True, help="Promote even if the evaluation gate refuses.")
@click.option("--queue", is_flag=True, help="Only enqueue the re-embedding job for `rag worker`.")
@click.option("--json", "as_json", is_flag=True)
def models_promote(model_id: int, force: bool, queue: bool, as_json: bool) -> None:
    """Re-embed every chunk with the model into a new index generation, then switch to it atomically
    (the API keeps answering from the current one meanwhile). Resumable: run it again after a kill.
    Refused, with the reason, unless the model beats the active one by RAG_MODEL_PROMOTE_MIN_GAIN."""
    from ingest.reembed import Promoter
    from rag import jobs
    from rag.model_loader import ModelEmbedders
    from rag.model_promotion import request_promotion

    rt = Runtime()
    target = {"model_id": model_id, "force": force}
    with rt.factory() as session:
        resumable = jobs.active_model_job(session, jobs.REEMBED)
        try:
            if (
                resumable is not None
                and resumable.state == jobs.RUNNING
                and (resumable.params or {}).get("model_id") == model_id
                and (resumable.worker_id or "").startswith("cli:")
            ):
                job = resumable  # a promotion from the CLI that was killed: resume it
            else:
                job = request_promotion(
                    session,
                    rt.settings,
                    model_id,
                    "operator",
                    force=force,
                    state=jobs.QUEUED if queue else jobs.RUNNING,
                    worker_id=None if queue else _worker_id(),
                )
        except RagError as exc:
            _audit(rt, "promote", 422, target, str(exc))
            fail(str(exc))
        job_id = job.id
    _audit(rt, "promote", 202, {**target, "job_id": job_id})
    if queue:
        click.echo(json.dumps({"job_id": job_id, "state": "queued"}) if as_json else f"queued job {job_id}")
        return
    bar = StepBar("re-embed", "chunk")
    try:
        result = Promoter(rt.settings, rt.engine, rt.factory, ModelEmbedders(rt.settings, rt.factory)).run(
            job_id, on_progress=bar
        )
    except RagError as exc:
        bar.close()
        fail(str(exc))
    bar.close()
    out = {"job_id": job_id, **result.as_dict()}
    if as_json:
        click.echo(json.dumps(out))
    else:
        click.echo(
            f"model {result.model_id} is active: generation {result.generation} ({result.chunks} chunks, "
            f"{result.embedded} embedded now); `rag models rollback` returns to model {result.previous_id}"
        )


@models.command(name="rollback")
@click.option("--json", "as_json", is_flag=True)
def models_rollback(as_json: bool) -> None:
    """Return at once to the previous model's kept generation (nothing is re-embedded); the current
    model is retired."""
    from rag.model_promotion import rollback

    rt = Runtime()
    try:
        out = rollback(rt.settings, rt.engine, rt.factory, "operator")
    except RagError as exc:
        _audit(rt, "rollback", 422, {}, str(exc))
        fail(str(exc))
    _audit(rt, "rollback", 200, out)
    if as_json:
        click.echo(json.dumps(out))
    else:
        click.echo(
            f"model {out['to_id']} is active again (generation {out['generation']}); model {out['from_id']} retired"
        )


@models.command(name="retire")
@click.argument("model_id", type=MODEL_ID)
@click.option("--json", "as_json", is_flag=True)
def models_retire(model_id: int, as_json: bool) -> None:
    """Retire a model that is not active: its kept generation and its extra vectors are dropped."""
    from rag import model_registry as registry

    rt = Runtime()
    try:
        with rt.factory() as session:
            out = registry.describe(registry.retire(session, rt.settings, registry.get_model(session, model_id)))
    except RagError as exc:
        _audit(rt, "retire", 422, {"model_id": model_id}, str(exc))
        fail(str(exc))
    _audit(rt, "retire", 200, {"model_id": model_id})
    click.echo(json.dumps(out) if as_json else f"model {model_id} retired")


@click.group()
def tune() -> None:
    """Adapt models to the ingested documents."""


@tune.command(name="embedder")
@click.option("--collection", help="Train on this collection's chunks only (default: all).")
@click.option(
    "--max-minutes", type=click.FloatRange(0.1, 24 * 60), help="Bound on training time (default RAG_TUNE_MAX_MINUTES)."
)
@click.option("--queue", is_flag=True, help="Only enqueue the tuning job for `rag worker`.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: model_id, sha256, heldout, completed.")
def tune_embedder_command(collection: str | None, max_minutes: float | None, queue: bool, as_json: bool) -> None:
    """Train a candidate embedder from the active one on the ingested chunks only (no labels), register
    it and evaluate it on held-out documents. Resumable: run it again after a kill."""
    from ingest.tune_job import Tuner
    from rag import jobs
    from rag.model_loader import ModelEmbedders

    rt = Runtime()
    params = {"collection": collection, "max_minutes": max_minutes or rt.settings.tune_max_minutes, "actor": "operator"}
    with rt.factory() as session:
        job = jobs.create_model_job(
            session,
            jobs.TUNE,
            params,
            collection=collection or "",
            state=jobs.QUEUED if queue else jobs.RUNNING,
            worker_id=None if queue else _worker_id(),
        )
        job_id = job.id
    if queue:
        click.echo(json.dumps({"job_id": job_id, "state": "queued"}) if as_json else f"queued job {job_id}")
        return
    bar = StepBar("tune", "step")
    try:
        result = Tuner(rt.settings, rt.engine, rt.factory, ModelEmbedders(rt.settings, rt.factory)).run(
            job_id, on_progress=bar
        )
    except (RagError, ImportError) as exc:
        bar.close()
        fail(str(exc))
    bar.close()
    if as_json:
        click.echo(json.dumps({"job_id": job_id, **result}))
        return
    gate = result["heldout"]
    click.echo(
        f"candidate model {result['model_id']} ({result['sha256'][:12]}): held-out ndcg@10 "
        f"{gate['candidate'].get('ndcg@10', 0):.4f} vs active {gate['active'].get('ndcg@10', 0):.4f} "
        f"(gain {gate['gain']:+.4f}); `rag models promote {result['model_id']}` when it is good enough"
    )
