"""The core's plain data: what passes between ingestion, the indexes, retrieval, answering and audit.

Nothing here imports a library beyond the standard one, so any module may declare a seam in these
terms (the Generator, the Router, the audit log) without pulling in FAISS, SQLAlchemy or torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal, get_args

# --- vocabulary ------------------------------------------------------------------------------------

Label = Literal["public", "internal", "confidential", "restricted"]
"""Sensitivity labels, lowest to highest. Documents carry one; their chunks inherit it."""
LABELS: tuple[Label, ...] = get_args(Label)
DEFAULT_LABEL: Label = "internal"

JobState = Literal["queued", "running", "succeeded", "failed"]
JOB_STATES: tuple[JobState, ...] = get_args(JobState)


# --- ingestion ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Element:
    """One structural piece of a parsed document (title, paragraph, table, list item...)."""

    text: str
    category: str
    page: int | None = None


@dataclass(slots=True)
class ChunkDraft:
    """A chunk before it has a database id: text plus where it came from."""

    ordinal: int
    text: str
    section: str | None
    pages: list[int] = field(default_factory=list)
    char_start: int = 0
    char_end: int = 0
    token_count: int = 0


@dataclass(frozen=True, slots=True)
class FailedFile:
    """A file a job could not ingest, with the reason an admin can act on."""

    path: str
    error: str


@dataclass
class JobCounts:
    """A job's progress: the one definition of its counters (table columns, API, CLI, report)."""

    files_total: int = 0
    files_seen: int = 0
    files_indexed: int = 0
    files_unchanged: int = 0
    files_deleted: int = 0
    files_failed: int = 0
    chunks_added: int = 0
    chunks_removed: int = 0

    @classmethod
    def of(cls, source: object) -> JobCounts:
        """The counters read off anything that has them as attributes (a job row, a report)."""
        return cls(**{name: int(getattr(source, name) or 0) for name in JOB_COUNTERS})

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in JOB_COUNTERS}


JOB_COUNTERS: tuple[str, ...] = tuple(f.name for f in fields(JobCounts))


# --- retrieval -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SearchFilters:
    collection: str | None = None
    path_prefix: str | None = None
    labels: tuple[Label, ...] | None = None

    def is_empty(self) -> bool:
        return not (self.collection or self.path_prefix or self.labels)


@dataclass(frozen=True, slots=True)
class Passage:
    """A retrieved chunk with what a citation needs about its document."""

    chunk_id: int
    document_id: int
    path: str
    title: str | None
    section: str | None
    pages: list[int]
    text: str
    score: float
    document_sha256: str
    document_version: int
    label: str
    collection: str

    @property
    def page(self) -> int | None:
        return self.pages[0] if self.pages else None


@dataclass(slots=True)
class SearchResult:
    passages: list[Passage]
    generation: int
    embed_ms: float = 0.0
    search_ms: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    query_vector: Any = None  # the query's embedding (numpy), reused by the answerability gate


# --- routing -------------------------------------------------------------------------------------------

Target = Literal["local", "external"]


@dataclass(frozen=True)
class RouteDecision:
    """Which model answers a question, and why (the router's verdict, kept in the audit record)."""

    target: Target
    reason: str
    rule: str  # machine-readable: disabled, not_permitted, question_sensitive, context_sensitive, ...
    detectors: tuple[str, ...] = ()  # "detector:kind" that fired (never the matched text)
    labels: dict[str, int] = field(default_factory=dict)  # labels of the retrieved passages -> count
    withheld: dict[str, int] = field(default_factory=dict)  # why passages were held back -> count
    send: tuple[Passage, ...] = ()  # the passages that may be sent out
    escalate_on_decline: bool = False  # local first; external only if the local model finds no answer
    model: str | None = None  # the external model, when the target is external

    def public(self) -> dict:
        """What the response and the audit record say about the decision."""
        out: dict = {"target": self.target, "reason": self.reason, "rule": self.rule}
        if self.detectors:
            out["detectors"] = list(self.detectors)
        if self.labels:
            out["labels"] = dict(self.labels)
        if self.withheld:
            out["withheld"] = dict(self.withheld)
        if self.target == "external":
            out["passages_sent"] = [p.chunk_id for p in self.send]
            out["model"] = self.model
        return out

    def stay_local(self, reason: str, rule: str) -> RouteDecision:
        return replace(self, target="local", reason=reason, rule=rule, escalate_on_decline=False)


DISABLED = RouteDecision("local", "escalation disabled", "disabled")


# --- answering -----------------------------------------------------------------------------------------


@dataclass
class Usage:
    """Tokens one generation consumed, filled in by the generator as it finishes."""

    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class Citation:
    n: int
    document_id: int
    path: str
    page: int | None
    chunk_id: int
    quote: str
    document_sha256: str
    title: str | None = None
    score: float = 0.0


# not_found: no passage sentence supports an answer; declined: supported sentences exist, but the
# answerability gate found that none of them answers the question that was asked.
AnswerStatus = Literal["answered", "not_found", "declined"]


@dataclass
class Answer:
    answer: str
    citations: list[Citation]
    model: str
    backend: str
    grounded: bool
    status: AnswerStatus
    fallback: bool = False
    notice: str | None = None
    passages: list[Passage] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    timings_ms: dict[str, float] = field(default_factory=dict)
    dropped_sentences: int = 0
    support: float = 0.0
    generation: int = 0
    neutralised: int = 0
    route: RouteDecision = DISABLED
    answerability: float | None = None  # the gate's score of the answer (None: the gate did not run)
    answerability_threshold: float | None = None
    sentences: list = field(default_factory=list)  # the checked sentences (grounding.CheckedSentence), kept or not


@dataclass(frozen=True)
class Delta:
    """A piece of answer text released to the caller (a sentence that passed the grounding check)."""

    text: str
