"""Queued jobs, claims that never collide, and the index writer lock enforced across processes."""

import subprocess
import sys
import time

import pytest
from sqlalchemy import select

from ingest import queue
from ingest.indexing import check
from ingest.locks import index_writer_lock
from rag import jobs
from rag.db.models import Document, IngestionJob
from rag.errors import LockBusyError

from .helpers import HANDBOOK, copy_tree


def test_claims_never_hand_one_job_to_two_workers(db):
    _, factory = db
    with factory() as s:
        for n in range(5):
            jobs.create_job(s, f"/docs/{n}", "default", None, None)
    claimed = []
    sessions = [factory() for _ in range(3)]
    for _round in range(2):
        for n, s in enumerate(sessions):
            job = queue.claim_next(s, f"worker-{n}")
            if job is not None:
                claimed.append(job.id)
    assert sorted(claimed) == [1, 2, 3, 4, 5]
    for s in sessions:
        s.close()


def test_stale_running_jobs_are_requeued(db):
    _, factory = db
    with factory() as s:
        job = jobs.create_job(s, "/docs", "default", None, None, state=jobs.RUNNING, worker_id="dead")
        assert queue.requeue_stale(s, stale_after_s=3600) == 0
        time.sleep(1.1)
        assert queue.requeue_stale(s, stale_after_s=1) == 1
        s.refresh(job)
        assert job.state == jobs.QUEUED and job.worker_id is None


def test_writer_lock_is_exclusive_across_processes(settings, db):
    engine, _ = db
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from pathlib import Path\n"
            "from rag.db.session import make_engine\n"
            "from rag.settings import Settings\n"
            "from ingest.locks import index_writer_lock\n"
            f"s = Settings(data_dir=Path({str(settings.data_dir)!r}), "
            f"database_url={settings.resolved_database_url!r}, _env_file=None)\n"
            "with index_writer_lock(make_engine(s), s.index_dir):\n"
            "    print('held', flush=True); time.sleep(30)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LockBusyError):
            with index_writer_lock(engine, settings.index_dir, wait_s=1.0):
                pass
    finally:
        holder.kill()
        holder.wait()
    with index_writer_lock(engine, settings.index_dir, wait_s=5.0):
        pass  # the dead holder's lock went with it


def test_two_workers_on_overlapping_folders_end_with_the_union(settings, db, cli_env, tmp_path):
    _, factory = db
    corpus = copy_tree(HANDBOOK, tmp_path / "handbook")
    with factory() as s:
        whole = jobs.create_job(s, str(corpus), "default", ["staff"], None)
        part = jobs.create_job(s, str(corpus / "policies"), "default", ["staff"], None)
    cmd = [sys.executable, "-m", "cli", "worker", "--once"]
    workers = [subprocess.Popen(cmd, env=cli_env, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for w in workers:
        _, err = w.communicate(timeout=600)
        assert w.returncode == 0, err
    with factory() as s:
        states = {j.id: j.state for j in s.scalars(select(IngestionJob))}
        paths = sorted(d.path for d in s.scalars(select(Document)))
    assert states == {whole.id: "succeeded", part.id: "succeeded"}
    expected = sorted(str(p) for p in corpus.rglob("*") if p.is_file())
    assert paths == expected  # the union, each document once
    assert check(factory, settings.index_dir) == []


def test_a_job_that_crashes_is_marked_failed_and_the_worker_goes_on(settings, db, fake_embedder, tmp_path):
    from ingest.pipeline import Ingestor
    from ingest.worker import Worker

    engine, factory = db
    corpus = copy_tree(HANDBOOK, tmp_path / "handbook")
    with factory() as s:
        doomed = jobs.create_job(s, str(corpus), "default", None, None)
        fine = jobs.create_job(s, str(corpus), "other", None, None)

    class ExplodingOnce(Ingestor):
        def _collection_id(self, name):
            if name == "default":
                raise OSError("disk vanished")
            return super()._collection_id(name)

    ingestor = ExplodingOnce(settings, engine, factory, fake_embedder, parse_workers=0)
    assert Worker(settings, factory, ingestor).run(once=True) == 2
    with factory() as s:
        assert s.get(IngestionJob, doomed.id).state == "failed"
        assert s.get(IngestionJob, fine.id).state == "succeeded"
