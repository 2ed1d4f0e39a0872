"""Tamper-evident audit log: an append-only hash chain of every audited request.

Each record stores `hash` = SHA-256 of its canonical serialisation (sorted-key JSON of every field,
`seq` and `prev_hash` included) and `mac` = HMAC-SHA256(audit key, hash). Editing, deleting,
inserting or swapping records breaks the chain; recomputing a record's own hash needs the key
(the MAC) and the next record's `prev_hash`. A signed checkpoint (size, head hash) kept outside the
database also exposes truncation or a wholesale rewrite. The database refuses UPDATE and DELETE on
the table (triggers, see migration 0002).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from rag.db.models import AuditRecord
from rag.errors import AuditUnavailableError, ConfigError, RagError
from rag.types import Answer, Passage

if TYPE_CHECKING:
    from rag.settings import Settings

GENESIS = "0" * 64
HASHED_FIELDS = (
    "seq",
    "kind",
    "ts",
    "request_id",
    "principal",
    "role",
    "groups",
    "route",
    "status",
    "question",
    "answer",
    "detail",
    "latency_ms",
    "prev_hash",
)
_PG_LOCK = 0x5241_4741  # advisory lock id serialising appends across processes
_HEAD = select(AuditRecord.seq, AuditRecord.hash).order_by(AuditRecord.seq.desc()).limit(1)
SQLITE_NO_DELETE = (
    "CREATE TRIGGER audit_records_no_delete BEFORE DELETE ON audit_records "
    "BEGIN SELECT RAISE(ABORT, 'audit_records is append-only (DELETE refused)'); END"
)
_WEAK_KEYS = {"", "change-me", "changeme", "secret", "password", "test", "default", "audit"}


@dataclass
class AuditEntry:
    request_id: str
    route: str
    status: int = 0
    principal: str | None = None
    role: str | None = None
    groups: list[str] = field(default_factory=list)
    question: str | None = None
    answer: str | None = None
    detail: dict = field(default_factory=dict)
    latency_ms: float = 0.0
    kind: str = "request"


_COLUMN_CHARS = {"request_id": 64, "principal": 200, "route": 200}


def storable(value):
    """The same value with text every database stores as is: a lone surrogate or a NUL (which
    PostgreSQL refuses) becomes its backslash escape. Nothing is dropped."""
    if isinstance(value, str):
        if "\x00" not in value and value.isascii():
            return value
        return value.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
    if isinstance(value, dict):
        return {storable(str(k)): storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(v) for v in value]
    return value


def question_from_body(body: bytes, limit: int = 10_000) -> str | None:
    """The question of a request refused before its body was validated (best effort, bounded)."""
    try:
        data = json.loads(body or b"null")
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested deeper than the parser goes
        return None
    if not isinstance(data, dict):
        return None
    value = data.get("question") or data.get("query")
    if value is None and isinstance(data.get("messages"), list):
        users = [m.get("content") for m in data["messages"] if isinstance(m, dict) and m.get("role") == "user"]
        value = users[-1] if users else None
    return value[:limit] if isinstance(value, str) else None


def _bounded(value: str | None, column: str) -> str | None:
    return None if value is None else storable(value)[: _COLUMN_CHARS[column]]


_QUESTION_FIELD = re.compile(r'"(?:question|query|content)"\s*:\s*"((?:[^"\\]|\\.)*)')


def question_from_prefix(prefix: bytes, limit: int) -> str | None:
    """The question in the first bytes of a body that was not read to its end (a refused caller's):
    parsed when the prefix is whole JSON, else the first question-like string field, unescaped."""
    whole = question_from_body(prefix, limit)
    if whole is not None:
        return whole
    found = _QUESTION_FIELD.search(prefix.decode("utf-8", "replace"))
    if found is None:
        return None
    try:
        return json.loads(f'"{found.group(1)}"')[:limit]
    except ValueError:
        return found.group(1)[:limit]


def record_passages(entry: AuditEntry, passages: list[Passage]) -> None:
    """What was retrieved, by id, version, score and label (the passage text stays in the database)."""
    entry.detail["retrieved"] = [
        {
            "chunk_id": p.chunk_id,
            "document_id": p.document_id,
            "version": p.document_version,
            "score": round(p.score, 6),
            "label": p.label,
        }
        for p in passages
    ]
    entry.detail["labels"] = sorted({p.label for p in passages})


def record_answer(entry: AuditEntry, answer: Answer) -> None:
    """The answer as the caller received it, with its citations, route, model and timings."""
    record_passages(entry, answer.passages)
    entry.answer = answer.answer
    entry.detail.update(
        {
            "model": answer.model,
            "backend": answer.backend,
            "status": answer.status,
            "grounded": answer.grounded,
            "fallback": answer.fallback,
            "route": answer.route.public(),
            "citations": [{"n": c.n, "chunk_id": c.chunk_id, "document_id": c.document_id} for c in answer.citations],
            "tokens": {"prompt": answer.usage.prompt_tokens, "completion": answer.usage.completion_tokens},
            "timings_ms": answer.timings_ms,
            "dropped_sentences": answer.dropped_sentences,
            "answerability": {
                "decision": answer.status,
                "score": answer.answerability,
                "threshold": answer.answerability_threshold,
            },
        }
    )


def read_checkpoint(path: Path) -> dict:
    """A checkpoint file as `rag audit checkpoint` wrote it; a missing or unreadable one is an error, never
    a silent "no checkpoint" (that would hide a deleted checkpoint along with a truncated log)."""
    try:
        checkpoint = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"audit checkpoint {path.name} unreadable: {exc.strerror or exc}") from exc
    except ValueError:
        raise ConfigError(f"audit checkpoint {path.name} is not JSON") from None
    if not isinstance(checkpoint, dict):
        raise ConfigError(f"audit checkpoint {path.name} is not a checkpoint")
    return checkpoint


@dataclass
class VerifyResult:
    ok: bool
    records: int
    head_seq: int = 0
    head_hash: str = GENESIS
    first_bad_seq: int | None = None
    reason: str | None = None

    checkpoint: dict | None = None  # the checkpoint checked against: head_seq, head_hash, created_at

    def as_json(self) -> dict:
        return {
            "ok": self.ok,
            "records": self.records,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "first_bad": None if self.ok else {"seq": self.first_bad_seq, "reason": self.reason},
            "checkpoint": self.checkpoint,
        }


def canonical(values: dict) -> bytes:
    return json.dumps(
        {k: values[k] for k in HASHED_FIELDS}, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()


def record_values(record: AuditRecord) -> dict:
    return {k: getattr(record, k) for k in HASHED_FIELDS}


def resolve_key(settings: Settings) -> bytes:
    """The audit key; in production an explicit strong one is required, in development one is
    generated once into the data folder."""
    if settings.audit_signing_key is not None:
        key = settings.audit_signing_key.get_secret_value()
        if key.strip().lower() in _WEAK_KEYS or len(key) < 32:
            if settings.mode != "development":
                raise ConfigError("RAG_AUDIT_SIGNING_KEY is empty, a default or shorter than 32 characters")
        if key:
            return key.encode()
    if settings.mode != "development":
        raise ConfigError(
            "RAG_AUDIT_SIGNING_KEY is required outside development mode (RAG_MODE=development "
            "generates one in the data folder)"
        )
    path = Path(settings.data_dir) / "audit.key"
    if not path.exists():
        # written whole under a private name, then linked into place: two processes starting together
        # (two APIs on one data folder) both get the one key, never a half-written or a second one
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"audit.key.{os.getpid()}.tmp")
        with open(partial, "w", encoding="ascii", opener=lambda p, flags: os.open(p, flags, 0o600)) as f:
            f.write(secrets.token_hex(32))
        try:
            os.link(partial, path)
        except FileExistsError:
            pass  # another process linked its key first: that one is the key
        finally:
            partial.unlink(missing_ok=True)
    return path.read_text(encoding="ascii").strip().encode()


class HashChainAuditLog:
    """The rag.protocols.AuditLog kept in the database as a hash chain (see the module docstring)."""

    def __init__(self, factory: sessionmaker[Session], key: bytes) -> None:
        self.factory = factory
        self.engine = factory.kw["bind"]
        self.key = key
        self._lock = threading.Lock()

    def mac(self, digest: str) -> str:
        return hmac.new(self.key, digest.encode(), hashlib.sha256).hexdigest()

    def append(self, entry: AuditEntry) -> None:
        """Writes one chained record; raises AuditUnavailableError when it cannot. Core statements on
        a plain connection, no ORM unit of work: this runs once per request, before its response."""
        for _attempt in range(5):
            try:
                with self._lock, self.engine.begin() as conn:
                    if conn.dialect.name == "postgresql":
                        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK})
                    head = conn.execute(_HEAD).first()
                    values = {
                        "seq": (head.seq + 1) if head else 1,
                        "kind": entry.kind,
                        "ts": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
                        "request_id": _bounded(entry.request_id, "request_id"),
                        "principal": _bounded(entry.principal, "principal"),
                        "role": entry.role,
                        "groups": storable(sorted(entry.groups)),
                        "route": _bounded(entry.route, "route"),
                        "status": int(entry.status),
                        "question": storable(entry.question),
                        "answer": storable(entry.answer),
                        "detail": storable(json.loads(json.dumps(entry.detail, default=str))),
                        "latency_ms": round(float(entry.latency_ms), 3),
                        "prev_hash": head.hash if head else GENESIS,
                    }
                    digest = hashlib.sha256(canonical(values)).hexdigest()
                    conn.execute(insert(AuditRecord), [{**values, "hash": digest, "mac": self.mac(digest)}])
                return
            except IntegrityError:
                continue  # another process appended the same seq first (SQLite across processes): retry
            except Exception as exc:
                raise AuditUnavailableError("the audit log is unavailable; the answer was withheld") from exc
        raise AuditUnavailableError("the audit log is busy; the answer was withheld")

    def iter_records(self, session: Session) -> Iterator[AuditRecord]:
        yield from session.scalars(select(AuditRecord).order_by(AuditRecord.seq)).yield_per(1000)

    def verify(self, checkpoint: dict | None = None) -> VerifyResult:
        """Walks the chain in order; names the first record that does not verify."""
        count, prev_hash, prev_seq, head = 0, GENESIS, 0, None
        with self.factory() as session:
            for record in self.iter_records(session):
                count += 1
                values = record_values(record)
                if count == 1 and record.seq != 1:
                    # an archived prefix: the chain must continue from a retention record's head
                    if not self._continues_archive(session, record):
                        return VerifyResult(
                            False, count, first_bad_seq=record.seq, reason="records before this one are missing"
                        )
                    prev_hash, prev_seq = record.prev_hash, record.seq - 1
                if record.seq != prev_seq + 1:
                    return VerifyResult(
                        False,
                        count,
                        first_bad_seq=record.seq,
                        reason=f"sequence gap: {prev_seq} is followed by {record.seq}",
                    )
                if record.prev_hash != prev_hash:
                    return VerifyResult(
                        False,
                        count,
                        first_bad_seq=record.seq,
                        reason="previous-hash link broken (a record was removed, inserted or changed)",
                    )
                if hashlib.sha256(canonical(values)).hexdigest() != record.hash:
                    return VerifyResult(
                        False, count, first_bad_seq=record.seq, reason="content does not match its hash"
                    )
                if not hmac.compare_digest(self.mac(record.hash), record.mac):
                    return VerifyResult(
                        False, count, first_bad_seq=record.seq, reason="MAC does not match (hash recomputed)"
                    )
                prev_hash, prev_seq, head = record.hash, record.seq, record
        shown = None
        if checkpoint is not None:
            shown = {k: checkpoint.get(k) for k in ("head_seq", "head_hash", "created_at")}
        result = VerifyResult(True, count, head.seq if head else 0, head.hash if head else GENESIS, checkpoint=shown)
        if checkpoint is not None:
            problem = self._check_checkpoint(checkpoint, result)
            if problem:
                return VerifyResult(
                    False,
                    count,
                    result.head_seq,
                    result.head_hash,
                    first_bad_seq=checkpoint.get("head_seq"),
                    reason=problem,
                    checkpoint=shown,
                )
        return result

    def _continues_archive(self, session: Session, first: AuditRecord) -> bool:
        for record in session.scalars(select(AuditRecord).where(AuditRecord.kind == "retention")):
            if (
                record.detail.get("archived_head_hash") == first.prev_hash
                and record.detail.get("archived_last_seq") == first.seq - 1
            ):
                return True
        return False

    def checkpoint(self) -> dict:
        """(size, head) signed with the audit key: kept outside the database, it exposes truncation."""
        with self.factory() as session:
            head = session.execute(
                select(AuditRecord.seq, AuditRecord.hash).order_by(AuditRecord.seq.desc()).limit(1)
            ).first()
        body = {
            "head_seq": head.seq if head else 0,
            "head_hash": head.hash if head else GENESIS,
            "created_at": dt.datetime.now(dt.UTC).isoformat(),
        }
        return {**body, "signature": self._sign(body)}

    def write_checkpoint(self, path: Path) -> dict:
        """A new checkpoint, replacing the file atomically (a crash never leaves half a checkpoint)."""
        checkpoint = self.checkpoint()
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            tmp.write_text(json.dumps(checkpoint, indent=2) + "\n")
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise ConfigError(f"cannot write the audit checkpoint {path.name}: {exc.strerror or exc}") from exc
        return checkpoint

    def _sign(self, body: dict) -> str:
        payload = json.dumps({k: body[k] for k in ("head_seq", "head_hash", "created_at")}, sort_keys=True).encode()
        return hmac.new(self.key, payload, hashlib.sha256).hexdigest()

    def _check_checkpoint(self, checkpoint: dict, result: VerifyResult) -> str | None:
        try:
            if not hmac.compare_digest(self._sign(checkpoint), str(checkpoint.get("signature", ""))):
                return "checkpoint signature invalid (not made with this audit key, or edited)"
        except (KeyError, TypeError):
            return "checkpoint malformed"
        seq, expected = int(checkpoint["head_seq"]), checkpoint["head_hash"]
        if seq == 0:
            return None
        if result.head_seq < seq:
            return f"log truncated: the checkpoint saw {seq} records, the log ends at {result.head_seq}"
        with self.factory() as session:
            found = session.scalars(select(AuditRecord.hash).where(AuditRecord.seq == seq)).first()
        if found != expected:
            return f"chain rewritten: record {seq} differs from the checkpoint"
        return None

    def archive(self, before: str, out: Path) -> dict:
        """Moves the oldest records (ts < `before`) to a JSON-lines file, then records the archival
        itself in the chain. Needs the table owner's rights (the triggers are lifted for the delete,
        inside the same transaction); the running service's role should not have them."""
        verdict = self.verify()
        if not verdict.ok:
            raise RagError(
                f"refusing to archive a log that does not verify (record {verdict.first_bad_seq}: {verdict.reason})"
            )
        with self.factory() as session:
            records = session.scalars(
                select(AuditRecord).where(AuditRecord.ts < before).order_by(AuditRecord.seq)
            ).all()
        if not records:
            return {"archived_count": 0}
        out.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        with open(out, "x", encoding="utf-8") as f:
            for r in records:
                line = (
                    json.dumps({**record_values(r), "hash": r.hash, "mac": r.mac}, sort_keys=True, ensure_ascii=False)
                    + "\n"
                )
                f.write(line)
                digest.update(line.encode())
            f.flush()
            os.fsync(f.fileno())
        first, last = records[0], records[-1]
        with self._lock, self.factory() as session:
            postgres = session.get_bind().dialect.name == "postgresql"
            if postgres:
                session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK})
                session.execute(text("ALTER TABLE audit_records DISABLE TRIGGER audit_records_append_only"))
            else:
                session.execute(text("DROP TRIGGER audit_records_no_delete"))
            session.execute(delete(AuditRecord).where(AuditRecord.seq <= last.seq))
            if postgres:
                session.execute(text("ALTER TABLE audit_records ENABLE TRIGGER audit_records_append_only"))
            else:
                session.execute(text(SQLITE_NO_DELETE))
            session.commit()
        summary = {
            "archived_first_seq": first.seq,
            "archived_last_seq": last.seq,
            "archived_count": len(records),
            "archived_head_hash": last.hash,
            "file": out.name,
            "file_sha256": digest.hexdigest(),
            "before": before,
        }
        self.append(
            AuditEntry(
                request_id=secrets.token_hex(16),
                route="audit:archive",
                status=200,
                kind="retention",
                principal="retention",
                detail=summary,
            )
        )
        return summary

    def count(self) -> int:
        with self.factory() as session:
            return int(session.scalar(select(func.count()).select_from(AuditRecord)) or 0)
