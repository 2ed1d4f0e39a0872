"""The long-lived worker: claims queued jobs from the database and runs them, until told to stop."""

from __future__ import annotations

import logging
import os
import signal
import socket
import time

from sqlalchemy.orm import Session, sessionmaker

from ingest import queue
from ingest.pipeline import Ingestor
from rag import jobs
from rag.errors import DatabaseUnavailableError, RagError
from rag.settings import Settings

log = logging.getLogger(__name__)


class Worker:
    def __init__(self, settings: Settings, factory: sessionmaker[Session], ingestor: Ingestor) -> None:
        self.settings = settings
        self.factory = factory
        self.ingestor = ingestor
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self._stopping = False

    def stop(self, *_: object) -> None:
        """Finish the job at hand, then exit (SIGTERM/SIGINT)."""
        self._stopping = True

    def run(self, once: bool = False) -> int:
        signal.signal(signal.SIGTERM, self.stop)
        done = 0
        while not self._stopping:
            try:
                with self.factory() as session:
                    queue.requeue_stale(session, self.settings.job_stale_s)
                    job = queue.claim_next(session, self.worker_id)
            except DatabaseUnavailableError as exc:
                if once:
                    raise
                # a database restart or failover: keep polling; a job cut off by it is re-queued as stale
                log.warning("worker %s: %s", self.worker_id, exc)
                time.sleep(self.settings.worker_poll_s)
                continue
            if job is None:
                if once:
                    break
                time.sleep(self.settings.worker_poll_s)
                continue
            log.info("worker %s runs job %s (%s)", self.worker_id, job.id, job.kind)
            try:
                self._runner(job.kind)(job.id)
            except RagError as exc:
                log.warning("job %s failed: %s", job.id, exc)
            except Exception as exc:  # noqa: BLE001 - the job is marked failed; the worker lives on
                log.error("job %s failed unexpectedly: %s", job.id, type(exc).__name__)
            done += 1
        return done

    def _runner(self, kind: str):
        """Each job kind's runner: ingestion, tuning a candidate embedder, or promoting one."""
        if kind == jobs.REEMBED:
            from ingest.reembed import Promoter

            return Promoter(self.settings, self.ingestor.engine, self.factory, self.ingestor.models).run
        if kind == jobs.TUNE:
            from ingest.tune_job import Tuner

            return Tuner(self.settings, self.ingestor.engine, self.factory, self.ingestor.models).run
        return self.ingestor.run
