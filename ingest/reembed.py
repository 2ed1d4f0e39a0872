"""Promotion without downtime: a `reembed` job embeds every chunk with the candidate (resumable: the
vectors are committed in batches and a rerun embeds only the rest), then publishes a generation of
the candidate's vectors; the manifest switch is the atomic moment. Until then the API answers from
the previous generation with the previous model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import select

from indexes.generations import Manifest
from ingest import vectors as model_vectors
from ingest.indexing import ann_policy, publish
from ingest.model_jobs import ModelJobRunner, Progress
from rag import jobs
from rag import model_registry as registry
from rag.db.models import Chunk


@dataclass
class PromotionResult:
    model_id: int
    previous_id: int
    generation: int
    folder: str
    chunks: int
    embedded: int
    retired: list[int]

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class Promoter(ModelJobRunner):
    kind = jobs.REEMBED

    def _work(self, job_id: int, params: dict, on_progress: Progress) -> PromotionResult:
        actor = str(params.get("actor") or "unknown")
        with self.factory() as session:
            model = registry.get_model(session, int(params["model_id"]))
            previous = registry.check_promotable(session, self.settings, model, force=bool(params.get("force")))
            base_id = registry.base_model(session, self.settings).id
            session.expunge_all()
        plan = model_vectors.model_plan(model, base_id, self.models.get(model))
        embedded = 0
        for _round in range(3):  # chunks ingested meanwhile are caught up; the publish does the last ones
            with self.factory() as session:
                ids = [int(i) for i in session.scalars(select(Chunk.id).order_by(Chunk.id))]
                lacking = model_vectors.missing(session, plan, np.asarray(ids, dtype=np.int64))
            total, start = len(ids), len(ids) - len(lacking)
            self._progress(job_id, start, total)
            on_progress(start, total)
            if not len(lacking):
                break

            def step(n: int, start: int = start, total: int = total) -> None:
                self._progress(job_id, start + n, total)
                on_progress(start + n, total)

            embedded += model_vectors.fill(self.factory, plan, lacking, step)

        seen: dict[str, Manifest | None] = {}

        def target(manifest: Manifest | None) -> model_vectors.ModelVectors:
            seen["previous"] = manifest  # under the writer lock: the generation this switch replaces
            return plan

        def protect() -> frozenset[str]:
            before = seen.get("previous")
            with self.factory() as session:
                kept = registry.protected_generations(session)
            return kept | ({before.folder} if before is not None else set())

        published = publish(
            self.engine,
            self.factory,
            self.settings.index_dir,
            plan.dim,
            keep=self.settings.keep_generations,
            ann=ann_policy(self.settings),
            vectors=target,
            protect=protect,
        )
        manifest = published.manifest
        before = seen.get("previous")
        with self.factory() as session:
            model = registry.get_model(session, model.id)
            previous = registry.get_model(session, previous.id)
            retired = registry.mark_promoted(
                session,
                self.settings,
                model,
                previous,
                manifest.folder,
                before.folder if before is not None and before.folder != manifest.folder else None,
                actor,
            )
        return PromotionResult(model.id, previous.id, manifest.generation, manifest.folder, len(ids), embedded, retired)
