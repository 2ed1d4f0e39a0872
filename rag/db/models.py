"""SQLAlchemy 2 models. The database is the source of truth; indexes are rebuilt from it."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from rag.types import JOB_COUNTERS

# SQLite only autoincrements INTEGER PRIMARY KEY; chunk ids become FAISS ids so they must never be reused.
BigId = BigInteger().with_variant(Integer(), "sqlite")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


document_groups = Table(
    "document_groups",
    Base.metadata,
    Column("document_id", ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True),
    Column("group_id", ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
)


class Collection(Base):
    __tablename__ = "collections"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Group(Base):
    __tablename__ = "groups"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)


class Document(Base):
    __tablename__ = "documents"
    __table_args__ = (UniqueConstraint("collection_id", "path"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id"), index=True)
    path: Mapped[str] = mapped_column(String(4096))
    title: Mapped[str | None] = mapped_column(String(1000))
    sha256: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer, default=1)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    label: Mapped[str] = mapped_column(String(20), default="internal")
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    # ingest.chunking.CHUNKER_VERSION that cut its chunks; an older one is re-chunked on the next ingest
    chunker_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # indexed: every restricted search reads max(updated_at) to tell whether its cached allowed set holds
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow, index=True
    )

    collection: Mapped[Collection] = relationship()
    groups: Mapped[list[Group]] = relationship(secondary=document_groups, lazy="selectin")


class Chunk(Base):
    __tablename__ = "chunks"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    ordinal: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    section: Mapped[str | None] = mapped_column(String(1000))
    pages: Mapped[list[int]] = mapped_column(JSON, default=list)
    char_start: Mapped[int] = mapped_column(Integer)
    char_end: Mapped[int] = mapped_column(Integer)
    token_count: Mapped[int] = mapped_column(Integer)
    document_sha256: Mapped[str] = mapped_column(String(64))
    document_version: Mapped[int] = mapped_column(Integer)
    # float32 little-endian bytes, so indexes can be rebuilt without re-embedding
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
    # the registry model (EmbedderModel) that computed `embedding`; None: version 1 (chunks before 0006)
    embedder_id: Mapped[int | None] = mapped_column(Integer)


class EmbedderModel(Base):
    """One version of the embedder in the registry (rag/model_registry.py): where its weights are, what
    they hash to, what it was trained on and how it scored; state candidate | active | retired."""

    __tablename__ = "embedder_models"
    id: Mapped[int] = mapped_column(primary_key=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("embedder_models.id"))
    sha256: Mapped[str] = mapped_column(String(64))  # of the weight files (model_registry.weights_sha256)
    path: Mapped[str] = mapped_column(String(4096))
    dim: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(20), index=True)
    method: Mapped[str] = mapped_column(String(100))  # packaged | the tuner's method name
    settings: Mapped[dict] = mapped_column(JSON, default=dict)
    trained_on: Mapped[dict] = mapped_column(JSON, default=dict)  # generation, watermark, collection, chunks
    evaluation: Mapped[dict] = mapped_column(JSON, default=dict)  # name -> {candidate, active, active_id, gain}
    generation: Mapped[str | None] = mapped_column(String(100))  # index folder it serves(d) from, kept for rollback
    previous_id: Mapped[int | None] = mapped_column(Integer)  # the model active before this one was promoted
    created_by: Mapped[str] = mapped_column(String(200))
    promoted_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    promoted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    retired_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class ChunkVector(Base):
    """A chunk's vector by a model other than the one that embedded it at ingest (re-embedding for a
    promotion, or catching up after a rollback): each model's vectors stay, so switching is exact."""

    __tablename__ = "chunk_vectors"
    model_id: Mapped[int] = mapped_column(ForeignKey("embedder_models.id", ondelete="CASCADE"), primary_key=True)
    chunk_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("chunks.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    embedding: Mapped[bytes] = mapped_column(LargeBinary)


class IngestionJob(Base):
    """A queued or running ingestion; its counters (rag.types.JOB_COUNTERS) are added below."""

    __tablename__ = "ingestion_jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    path: Mapped[str] = mapped_column(String(4096))
    collection: Mapped[str] = mapped_column(String(200))
    # None: keep what documents already have (new documents get no groups and the default label)
    groups: Mapped[list[str] | None] = mapped_column(JSON)
    label: Mapped[str | None] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(20), default="queued", index=True)
    worker_id: Mapped[str | None] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(Text)
    # ingest | tune | reembed (rag/jobs.py); model jobs keep their arguments, progress and outcome here
    kind: Mapped[str] = mapped_column(String(20), default="ingest", server_default="ingest")
    params: Mapped[dict | None] = mapped_column(JSON)
    done: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    total: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    result: Mapped[dict | None] = mapped_column(JSON)


for _counter in JOB_COUNTERS:  # one column per counter of rag.types.JobCounts
    setattr(IngestionJob, _counter, mapped_column(_counter, Integer, default=0))


class JobFile(Base):
    """Per-file outcome of a job: the progress admins watch and the record of why a file failed."""

    __tablename__ = "job_files"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("ingestion_jobs.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(String(4096))
    status: Mapped[str] = mapped_column(String(20))
    chunks_added: Mapped[int] = mapped_column(Integer, default=0)
    chunks_removed: Mapped[int] = mapped_column(Integer, default=0)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


user_groups = Table(
    "user_groups",
    Base.metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("group_id", ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
)


class User(Base):
    """A person or service using the API. Groups are read per request, so changes apply at once."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    role: Mapped[str] = mapped_column(String(20))  # employee | admin | auditor
    disabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    groups: Mapped[list[Group]] = relationship(secondary=user_groups, lazy="selectin")


class ApiKey(Base):
    """Only a SHA-256 of the key is stored (keys are 256-bit random, so no slow hash is needed)."""

    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(200))
    issued_by: Mapped[str | None] = mapped_column(String(200))  # who minted it (None: before 0003)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    user: Mapped[User] = relationship(lazy="joined")


class AuditRecord(Base):
    """One request to an audited route, chained: `hash` = SHA-256 of the canonical record including
    `prev_hash`; `mac` = HMAC of `hash` with the audit key. Rows are never updated or deleted."""

    __tablename__ = "audit_records"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    kind: Mapped[str] = mapped_column(String(20), default="request")  # request | retention
    ts: Mapped[str] = mapped_column(String(40), index=True)  # ISO-8601 UTC, exactly as hashed
    request_id: Mapped[str] = mapped_column(String(64), index=True)
    principal: Mapped[str | None] = mapped_column(String(200), index=True)
    role: Mapped[str | None] = mapped_column(String(20))
    groups: Mapped[list[str]] = mapped_column(JSON, default=list)
    route: Mapped[str] = mapped_column(String(200), index=True)
    status: Mapped[int] = mapped_column(Integer, index=True)
    question: Mapped[str | None] = mapped_column(Text)
    answer: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict] = mapped_column(JSON, default=dict)  # retrieved, labels, model, citations, tokens...
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    mac: Mapped[str] = mapped_column(String(64))


class WebSession(Base):
    """A signed-in browser (the web app): only a SHA-256 of the session id is stored, so a copy of the
    database lets nobody in. The principal is rebuilt from the user on every request."""

    __tablename__ = "web_sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    id_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"))
    via: Mapped[str] = mapped_column(String(20))  # what signed in: api_key | bootstrap | oidc
    # oidc: the name, role and groups the identity provider's ID token gave at sign-in (no user row)
    identity: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)  # the absolute limit
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class Feedback(Base):
    """A thumbs up or down on one answer, keyed by the answer's request id (its audit record):
    one rating per user and answer, replaced when they rate again."""

    __tablename__ = "feedback"
    __table_args__ = (UniqueConstraint("request_id", "principal"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64), index=True)
    principal: Mapped[str] = mapped_column(String(200))
    rating: Mapped[str] = mapped_column(String(10), index=True)  # up | down
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Conversation(Base):
    """An employee's conversation in the web app (or over the REST routes): only its owner may list,
    open, continue, rename or delete it; to anyone else it does not exist."""

    __tablename__ = "conversations"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(200), index=True)  # the principal's name, as audit records keep it
    title: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ConversationTurn(Base):
    """One question and its answer, keyed by the answer's request id: a turn is shown only once the
    audit record of that request exists, so an answer the audit log withheld is never replayed."""

    __tablename__ = "conversation_turns"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    request_id: Mapped[str] = mapped_column(String(64), index=True)
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    result: Mapped[dict] = mapped_column(JSON, default=dict)  # the query's JSON answer: citations, status, route
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
