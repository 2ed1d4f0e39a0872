"""Request and response bodies of the admin ingestion API."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class IngestRequest(BaseModel):
    path: str = Field(description="Folder or file to ingest; must lie inside RAG_INGEST_ROOTS", min_length=1)
    collection: str = Field(default="default", min_length=1, max_length=200)
    groups: list[str] | None = Field(default=None, description="Groups allowed to read the documents; null keeps existing")
    label: Literal["public", "internal", "confidential", "restricted"] | None = None


class FileError(BaseModel):
    path: str
    error: str


class JobStatus(BaseModel):
    job_id: int
    state: Literal["queued", "running", "succeeded", "failed"]
    path: str
    collection: str
    files_total: int
    files_seen: int
    files_indexed: int
    files_unchanged: int
    files_deleted: int
    files_failed: int
    chunks_added: int
    chunks_removed: int
    error: str | None = None
    errors: list[FileError] = Field(default_factory=list)


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody
    request_id: str
