"""What a job did, file by file and in total: the counts the CLI prints and the API reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from rag.types import IngestError


@dataclass
class JobReport:
    job_id: int
    files_seen: int = 0
    files_indexed: int = 0
    files_unchanged: int = 0
    files_deleted: int = 0
    files_failed: int = 0
    chunks_added: int = 0
    chunks_removed: int = 0
    errors: list[IngestError] = field(default_factory=list)
    files_total: int = 0
    chunks_embedded: int = 0

    def as_json(self) -> dict:
        return {
            "job_id": self.job_id,
            "files_seen": self.files_seen,
            "files_indexed": self.files_indexed,
            "files_unchanged": self.files_unchanged,
            "files_deleted": self.files_deleted,
            "files_failed": self.files_failed,
            "chunks_added": self.chunks_added,
            "chunks_removed": self.chunks_removed,
            "errors": [{"path": e.path, "error": e.error} for e in self.errors],
        }

    @property
    def files_done(self) -> int:
        return self.files_indexed + self.files_unchanged + self.files_failed


ProgressCallback = Callable[[JobReport], None]


@dataclass
class Outcome:
    """One file's result within a job."""

    path: str
    status: str
    added: int = 0
    removed: int = 0
    seconds: float = 0.0
    error: str | None = None
