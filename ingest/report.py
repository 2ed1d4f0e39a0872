"""What a job did, file by file and in total: the counts the CLI prints and the API reports."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from rag.types import FailedFile, JobCounts


@dataclass
class JobReport(JobCounts):
    """The counters of rag.types.JobCounts as a running job updates them, plus what failed."""

    job_id: int = 0
    errors: list[FailedFile] = field(default_factory=list)
    chunks_embedded: int = 0

    def as_json(self) -> dict:
        """`rag ingest --json`: job_id, every counter, errors[{path, error}]."""
        return {
            "job_id": self.job_id,
            **self.as_dict(),
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
