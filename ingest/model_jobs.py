"""What a model job (tune, reembed) does around its work: look the job up, report progress with a
heartbeat, and record how it ended, whatever the work was. Subclasses do the work in `_work`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, update
from sqlalchemy.orm import Session, sessionmaker

from rag import jobs
from rag.db.models import IngestionJob, utcnow
from rag.errors import NotFoundError, RagError
from rag.model_loader import ModelEmbedders
from rag.settings import Settings

Progress = Callable[[int, int], None]


class ModelJobRunner:
    kind: str = ""

    def __init__(
        self, settings: Settings, engine: Engine, factory: sessionmaker[Session], models: ModelEmbedders
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.factory = factory
        self.models = models

    def run(self, job_id: int, on_progress: Progress | None = None) -> Any:
        with self.factory() as session:
            job = session.get(IngestionJob, job_id)
            if job is None or job.kind != self.kind:
                raise NotFoundError(f"no {self.kind} job {job_id}")
            params = dict(job.params or {})
        try:
            result = self._work(job_id, params, on_progress or (lambda done, total: None))
        except BaseException as exc:
            # a RagError's message is for the admin; anything else is named only (no paths or text)
            self._finish(job_id, jobs.FAILED, error=str(exc) if isinstance(exc, RagError) else type(exc).__name__)
            raise
        self._finish(job_id, jobs.SUCCEEDED, result=self._as_record(result))
        return result

    def _work(self, job_id: int, params: dict, on_progress: Progress) -> Any:
        raise NotImplementedError

    @staticmethod
    def _as_record(result: Any) -> dict:
        return result if isinstance(result, dict) else result.as_dict()

    def _progress(self, job_id: int, done: int, total: int) -> None:
        with self.factory() as session:
            session.execute(
                update(IngestionJob)
                .where(IngestionJob.id == job_id)
                .values(done=done, total=total, heartbeat_at=utcnow())
            )
            session.commit()

    def _finish(self, job_id: int, state: str, error: str | None = None, result: dict | None = None) -> None:
        with self.factory() as session:
            job = session.get(IngestionJob, job_id)
            job.state, job.error, job.finished_at, job.result = state, error, utcnow(), result
            session.commit()
