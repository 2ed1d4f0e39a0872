"""The embedder registry: version 1, weights' hashes, the evaluation gate on a labelled BEIR folder,
promote/rollback from the CLI and the admin API with their audit records and role checks."""

from __future__ import annotations

import json
import shutil
import time

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from cli.main import main as rag
from indexes.generations import MANIFEST
from ingest.pipeline import Ingestor
from ingest.worker import Worker
from rag import model_registry as registry
from rag.db.models import AuditRecord
from rag.errors import InvalidRequestError

from . import fixtures
from .helpers import HANDBOOK, bearer, copy_tree, make_user, run_job
from .test_promotion import add_candidate


def test_packaged_model_is_version_1_and_its_hash_covers_the_weights_only(settings, db, tmp_path):
    _, factory = db
    with factory() as session:
        first = registry.base_model(session, settings)
        again = registry.base_model(session, settings)
        assert first.id == again.id == 1 and first.state == "active" and first.method == "packaged"
        assert first.dim == 384 and first.created_by == "system"
        assert len(session.scalars(select(registry.EmbedderModel)).all()) == 1
    copy = shutil.copytree(settings.resolved_model_path, tmp_path / "copy")
    (copy / "README.md").write_text("edited")  # not a weight file
    assert registry.weights_sha256(copy) == first.sha256
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 1
    weights.write_bytes(bytes(data))
    assert registry.weights_sha256(copy) != first.sha256


def test_candidates_live_under_the_models_folder_only(settings, db, perturbed_model):
    _, factory = db
    with factory() as session:
        base = registry.base_model(session, settings)
        with pytest.raises(InvalidRequestError, match="under the data folder's models/"):
            registry.register_candidate(
                session,
                settings,
                perturbed_model,
                parent=base,
                method="x",
                method_settings={},
                trained_on={},
                created_by="t",
            )


def _beir(folder, docs=24):
    """A small labelled set of our own: each query is a sentence of the document it must find."""
    (folder / "qrels").mkdir(parents=True)
    corpus, queries, qrels = [], [], ["query-id\tcorpus-id\tscore"]
    for n in range(docs):
        text = " ".join(fixtures.paragraphs(4000 + n, 3))
        corpus.append(json.dumps({"_id": f"d{n}", "title": f"Note {n}", "text": text}))
        queries.append(json.dumps({"_id": f"q{n}", "text": text.split(". ")[1]}))
        qrels.append(f"q{n}\td{n}\t1")
    (folder / "corpus.jsonl").write_text("\n".join(corpus) + "\n")
    (folder / "queries.jsonl").write_text("\n".join(queries) + "\n")
    (folder / "qrels" / "test.tsv").write_text("\n".join(qrels) + "\n")
    return folder


def _audit(factory, prefix: str) -> list[AuditRecord]:
    with factory() as session:
        return list(
            session.scalars(select(AuditRecord).where(AuditRecord.route.startswith(prefix)).order_by(AuditRecord.seq))
        )


def test_cli_gate_refuses_without_gain_accepts_with_force_and_audits(
    settings,
    db,
    cli_env,
    real_embedder,
    perturbed_model,
    tmp_path,
    monkeypatch,
):
    _, factory = db
    run_job(settings, db, real_embedder, copy_tree(HANDBOOK, tmp_path / "hb"))
    model_id = add_candidate(settings, factory, perturbed_model)
    for name, value in cli_env.items():
        monkeypatch.setenv(name, value)
    runner = CliRunner()

    listed = runner.invoke(rag, ["models", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [(m["id"], m["state"]) for m in json.loads(listed.output)] == [(1, "active"), (model_id, "candidate")]

    refused = runner.invoke(rag, ["models", "promote", str(model_id)])
    assert refused.exit_code == 2 and "no evaluation against the active model 1" in refused.output

    beir = _beir(tmp_path / "notes")
    evaluated = runner.invoke(rag, ["models", "evaluate", str(model_id), "--beir", str(beir), "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    entry = json.loads(evaluated.output.strip().splitlines()[-1])["beir:notes:test"]
    assert entry["active_id"] == 1 and entry["candidate"]["queries"] == 24
    assert entry["gain"] == pytest.approx(entry["candidate"]["ndcg@10"] - entry["active"]["ndcg@10"], abs=1e-6)

    monkeypatch.setenv("RAG_MODEL_PROMOTE_MIN_GAIN", str(max(0.0, entry["gain"]) + 0.01))
    refused = runner.invoke(rag, ["models", "promote", str(model_id)])
    assert refused.exit_code == 2
    assert f"model {model_id} does not beat active model 1: beir:notes:test" in refused.output
    assert "--force overrides" in refused.output

    forced = runner.invoke(rag, ["models", "promote", str(model_id), "--force", "--json"])
    assert forced.exit_code == 0, forced.output
    assert json.loads(forced.output.strip().splitlines()[-1])["model_id"] == model_id
    shown = json.loads(runner.invoke(rag, ["models", "show", str(model_id), "--json"]).output)
    assert shown["state"] == "active" and shown["promoted_by"] == "operator" and shown["previous_id"] == 1

    back = runner.invoke(rag, ["models", "rollback", "--json"])
    assert back.exit_code == 0, back.output
    assert json.loads(back.output)["to_id"] == 1
    again = runner.invoke(rag, ["models", "rollback"])
    assert again.exit_code == 2 and "no previous model" in again.output

    promotes = _audit(factory, "cli:models promote")
    assert [r.status for r in promotes] == [422, 422, 202]
    assert promotes[-1].detail["target"]["model_id"] == model_id and promotes[-1].detail["target"]["force"]
    assert "does not beat" in promotes[1].detail["error"]
    assert [r.status for r in _audit(factory, "cli:models rollback")] == [200, 422]


def test_admin_api_promotes_through_the_worker_rolls_back_and_checks_roles(
    settings,
    db,
    real_embedder,
    perturbed_model,
    tmp_path,
):
    engine, factory = db
    run_job(settings, db, real_embedder, copy_tree(HANDBOOK, tmp_path / "hb"), groups=["everyone"])
    model_id = add_candidate(settings, factory, perturbed_model)
    s = settings.model_copy(update={"generator": "extractive"})
    keys = {role: make_user(s, f"{role}1", role) for role in ("employee", "admin", "auditor")}
    client = TestClient(create_app(s, embedder=real_embedder))
    admin = bearer(keys["admin"])

    for role in ("employee", "auditor"):
        for method, path in (
            ("GET", "/v1/embedders"),
            ("GET", "/v1/embedders/1"),
            ("POST", f"/v1/embedders/{model_id}/promote"),
            ("POST", "/v1/embedders/rollback"),
        ):
            r = client.request(method, path, headers=bearer(keys[role]), json={} if method == "POST" else None)
            assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", (role, path)
    assert client.get("/v1/embedders").status_code == 401

    listed = client.get("/v1/embedders", headers=admin)
    assert listed.status_code == 200 and [m["state"] for m in listed.json()] == ["active", "candidate"]
    assert "path" not in listed.json()[0] and listed.json()[1]["folder"] == "perturbed"
    assert client.get("/v1/embedders/999", headers=admin).status_code == 404

    refused = client.post(f"/v1/embedders/{model_id}/promote", headers=admin, json={})
    assert refused.status_code == 422 and "no evaluation" in refused.json()["error"]["message"]
    queued = client.post(f"/v1/embedders/{model_id}/promote", headers=admin, json={"force": True})
    assert queued.status_code == 202, queued.text
    job = queued.json()
    assert job["kind"] == "reembed" and job["state"] == "queued"
    busy = client.post(f"/v1/embedders/{model_id}/promote", headers=admin, json={"force": True})
    assert busy.status_code == 422 and "already queued" in busy.json()["error"]["message"]

    before = client.post("/v1/search", headers=admin, json={"query": "vacation days", "top_k": 5}).json()
    Worker(s, factory, Ingestor(s, engine, factory, real_embedder)).run(once=True)
    status = client.get(f"/v1/ingest/jobs/{job['job_id']}", headers=admin).json()
    assert status["state"] == "succeeded" and status["done"] == status["total"] > 0
    assert status["result"]["model_id"] == model_id
    time.sleep(1.1)
    after = client.post("/v1/search", headers=admin, json={"query": "vacation days", "top_k": 5}).json()
    assert after["results"] and [p["score"] for p in after["results"]] != [p["score"] for p in before["results"]]

    back = client.post("/v1/embedders/rollback", headers=admin)
    assert back.status_code == 200 and back.json()["from_id"] == model_id and back.json()["to_id"] == 1
    time.sleep(1.1)
    restored = client.post("/v1/search", headers=admin, json={"query": "vacation days", "top_k": 5}).json()
    assert restored["results"] == before["results"]
    assert client.post("/v1/embedders/rollback", headers=admin).status_code == 422

    # a generation naming a model the registry does not hold: 503 in the one error format, never searched
    manifest = settings.index_dir / MANIFEST
    data = json.loads(manifest.read_text())
    data["model"] = {"id": 77, "sha256": "7" * 64, "dim": 384}
    manifest.write_text(json.dumps(data))
    time.sleep(1.1)  # the API looks at the manifest once a second
    r = client.post("/v1/search", headers=admin, json={"query": "vacation days"})
    assert r.status_code == 503 and "refusing to search it" in r.json()["error"]["message"]

    promotes = _audit(factory, "/v1/embedders/{model_id}/promote")
    assert [(r.status, r.principal) for r in promotes if r.principal == "admin1"] == [
        (422, "admin1"),
        (202, "admin1"),
        (422, "admin1"),
    ]
    assert promotes[-2].detail["target"] == {"model_id": model_id, "force": True, "job_id": job["job_id"]}
    rollbacks = [r for r in _audit(factory, "/v1/embedders/rollback") if r.principal == "admin1"]
    assert [r.status for r in rollbacks] == [200, 422]
    assert rollbacks[0].detail["target"]["from_id"] == model_id
