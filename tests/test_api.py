"""Admin ingestion API: closed without a key, confined to RAG_INGEST_ROOTS, job status with counts."""

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from ingest.pipeline import Ingestor
from ingest.worker import Worker

from .helpers import HANDBOOK, copy_tree

KEY = "test-admin-key-0123456789"


@pytest.fixture
def roots(tmp_path):
    root = tmp_path / "drive"
    copy_tree(HANDBOOK, root / "handbook")
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / "salaries.txt").write_text("secret")
    (root / "escape").symlink_to(tmp_path / "private")
    return root


def _client(settings, roots, key=KEY):
    s = settings.model_copy(update={"ingest_roots": [roots], "admin_api_key": SecretStr(key) if key else None})
    return TestClient(create_app(s)), s


def test_admin_routes_are_closed_without_a_valid_key(settings, db, roots):
    client, _ = _client(settings, roots, key=None)
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.post("/v1/ingest/jobs", json={"path": str(roots)})
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized" and r.json()["request_id"]
    client, _ = _client(settings, roots)
    r = client.post("/v1/ingest/jobs", json={"path": str(roots)}, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401


def test_paths_outside_the_roots_are_refused(settings, db, roots, tmp_path):
    client, _ = _client(settings, roots)
    auth = {"Authorization": f"Bearer {KEY}"}
    for path in [str(tmp_path / "private"), str(roots / ".." / "private"), str(roots / "escape"), "/etc"]:
        r = client.post("/v1/ingest/jobs", json={"path": path}, headers=auth)
        assert r.status_code == 403, path
        assert "outside the configured ingest roots" in r.json()["error"]["message"]
        assert str(tmp_path) not in r.text  # no host paths echoed back
    r = client.post("/v1/ingest/jobs", json={"path": str(roots), "label": "secret"}, headers=auth)
    assert r.status_code == 422 and r.json()["error"]["message"].startswith("label")


def test_queued_job_runs_on_a_worker_and_reports_counts(settings, db, roots, fake_embedder):
    engine, factory = db
    client, s = _client(settings, roots)
    auth = {"Authorization": f"Bearer {KEY}"}
    r = client.post("/v1/ingest/jobs", json={"path": str(roots / "handbook"), "groups": ["staff"]}, headers=auth)
    assert r.status_code == 202 and r.json()["state"] == "queued"
    job_id = r.json()["job_id"]
    ran = Worker(s, factory, Ingestor(s, engine, factory, fake_embedder, parse_workers=0)).run(once=True)
    assert ran == 1
    status = client.get(f"/v1/ingest/jobs/{job_id}", headers=auth).json()
    assert status["state"] == "succeeded"
    assert (status["files_total"], status["files_indexed"], status["files_failed"]) == (6, 6, 0)
    assert status["chunks_added"] > 10
    assert client.get("/v1/ingest/jobs/999", headers=auth).status_code == 404
