"""Regression tests for the attack review (issue 15): each reproduces one finding as it was found."""

from __future__ import annotations

import shutil

from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select

from api.app import create_app
from ingest import discovery, pipeline
from ingest.pipeline import Ingestor
from ingest.worker import Worker
from rag import jobs
from rag.db.models import Document

from .helpers import bearer, make_user

ADMIN_KEY = "test-admin-key-0123456789"


def _app(settings, fake_embedder, **overrides):
    s = settings.model_copy(
        update={"generator": "extractive", "admin_api_key": SecretStr(ADMIN_KEY), **overrides},
    )
    return TestClient(create_app(s, embedder=fake_embedder), raise_server_exceptions=False), s


def test_a_folder_swapped_for_a_link_after_queueing_is_not_followed(settings, db, fake_embedder, tmp_path):
    """Finding 1: checked when queued, swapped for a symlink to an outside folder before the worker ran."""
    engine, factory = db
    root = tmp_path / "drive"
    (root / "toctou").mkdir(parents=True)
    (root / "toctou" / "notes.txt").write_text("Harmless notes about the office plants.\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "salaries.txt").write_text("Salary of the chief executive: 950,000 zorkmids.\n")
    client, s = _app(settings, fake_embedder, ingest_roots=[root])
    r = client.post(
        "/v1/ingest/jobs", json={"path": str(root / "toctou"), "groups": ["everyone"]}, headers=bearer(ADMIN_KEY)
    )
    assert r.status_code == 202, r.text
    shutil.rmtree(root / "toctou")
    (root / "toctou").symlink_to(outside)

    Worker(s, factory, Ingestor(s, engine, factory, fake_embedder, parse_workers=0)).run(once=True)

    status = client.get(f"/v1/ingest/jobs/{r.json()['job_id']}", headers=bearer(ADMIN_KEY)).json()
    assert status["state"] == "failed" and "link" in status["error"]
    with factory() as session:
        assert session.scalars(select(Document.path)).all() == []
    employee = bearer(make_user(s, "eve", groups=["everyone"]))
    hits = client.post("/v1/search", json={"query": "salary chief executive zorkmids"}, headers=employee)
    assert hits.status_code in (200, 503) and "zorkmids" not in hits.text


def test_a_subfolder_swapped_for_a_link_during_a_job_is_not_followed(
    settings, db, fake_embedder, tmp_path, monkeypatch
):
    """The same swap one level down, between discovery and reading: that file fails alone."""
    engine, factory = db
    root = tmp_path / "drive"
    (root / "team" / "sub").mkdir(parents=True)
    (root / "team" / "readme.txt").write_text("The team folder holds meeting notes.\n")
    (root / "team" / "sub" / "plan.txt").write_text("The plan for the summer party.\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "plan.txt").write_text("Secret merger plan with Initech.\n")

    def discover_then_swap(target):
        found = discovery.discover(target)
        shutil.rmtree(root / "team" / "sub")
        (root / "team" / "sub").symlink_to(outside)
        return found

    monkeypatch.setattr(pipeline, "discover", discover_then_swap)
    with factory() as session:
        job = jobs.create_job(session, str(root / "team"), "default", ["everyone"], None, state=jobs.RUNNING)
    report = Ingestor(settings, engine, factory, fake_embedder, parse_workers=0).run(job.id)
    assert report.files_indexed == 1 and report.files_failed == 1
    assert "link" in report.errors[0].error
    with factory() as session:
        assert [p.rsplit("/", 1)[-1] for p in session.scalars(select(Document.path))] == ["readme.txt"]
