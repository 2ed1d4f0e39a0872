"""Request and response bodies of every route: the API's contract, in one module."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, create_model

from rag.auth.principal import Role
from rag.types import JOB_COUNTERS, JobState, Label

# --- what every request body's text must be ----------------------------------------------------

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # NUL and lone surrogates: no database stores them as text
MAX_PATH_CHARS = 4096
MAX_NAME_BYTES = 255  # of one path component, as file systems count it


def storable_text(value: str) -> str:
    if _UNSTORABLE.search(value):
        raise ValueError("text must be valid Unicode without NUL characters")
    return value


def printable(value: str) -> str:
    if not value.isprintable():
        raise ValueError("must be printable (no control or invisible format characters)")
    return value


def _file_path(value: str) -> str:
    if any(len(part.encode("utf-8")) > MAX_NAME_BYTES for part in value.split("/")):
        raise ValueError(f"a path component is longer than {MAX_NAME_BYTES} bytes")
    return value


Text = Annotated[str, AfterValidator(storable_text)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(printable)]
GroupList = Annotated[list[Name], Field(max_length=100)]
FilePath = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_PATH_CHARS),
    AfterValidator(storable_text),
    AfterValidator(printable),
    AfterValidator(_file_path),
]


class RequestBody(BaseModel):
    """Strict: `"5"` or `true` is not an integer; text that no database can store is refused."""

    model_config = ConfigDict(strict=True)


class IngestRequest(RequestBody):
    path: FilePath = Field(description="Folder or file to ingest; must lie inside RAG_INGEST_ROOTS")
    collection: Name = "default"
    groups: GroupList | None = Field(
        default=None, description="Groups allowed to read the documents; null keeps existing"
    )
    label: Label | None = None


class FileError(BaseModel):
    path: str
    error: str


# the counters of rag.types.JobCounts, as fields
_JobCountsOut = create_model("JobCountsOut", **{name: (int, 0) for name in JOB_COUNTERS})  # type: ignore[call-overload]


class JobStatus(_JobCountsOut):  # type: ignore[misc, valid-type]
    job_id: int
    state: JobState
    path: str
    collection: str
    error: str | None = None
    errors: list[FileError] = Field(default_factory=list)
    kind: Literal["ingest", "tune", "reembed"] = Field(
        default="ingest", description="ingest; tune: train a candidate embedder; reembed: promote one"
    )
    done: int = Field(default=0, description="tune: training steps done; reembed: chunks embedded so far")
    total: int = Field(default=0, description="tune: steps planned; reembed: chunks to embed")
    result: dict | None = Field(default=None, description="a model job's outcome, e.g. the model id it made")


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody
    request_id: str


# --- query side -------------------------------------------------------------------------------


class SearchFiltersIn(RequestBody):
    collection: Name | None = Field(default=None, description="Only documents of this collection")
    path_prefix: Annotated[Text, Field(max_length=MAX_PATH_CHARS)] | None = Field(
        default=None, description="Only documents whose path starts with this"
    )
    label: Label | list[Label] | None = Field(default=None, description="Only documents with this label (or these)")


class SearchRequest(RequestBody):
    query: Text = Field(min_length=1, description="Free-text query")
    top_k: int = Field(default=10, ge=1, le=100, description="How many passages to return")
    filters: SearchFiltersIn | None = None


class RouteExplainRequest(RequestBody):
    question: Text = Field(min_length=1)
    user: Name | None = Field(default=None, description="Decide for this user (default: the calling admin)")
    top_k: int | None = Field(default=None, ge=1, le=50)
    filters: SearchFiltersIn | None = None


class SearchResultItem(BaseModel):
    chunk_id: int = Field(description="Stable id of the passage (chunk)")
    document_id: int
    path: str = Field(description="Source file path as ingested")
    title: str | None = Field(description="Document title, when the parser found one")
    page: int | None = Field(description="First page the passage comes from (paged formats only)")
    text: str = Field(description="The passage text")
    score: float = Field(description="Fused retrieval score (higher is better; comparable within one response)")
    section: str | None = Field(default=None, description="Heading of the section the passage belongs to")
    collection: str
    label: Label
    document_sha256: str


class SearchResponse(BaseModel):
    results: list[SearchResultItem]
    request_id: str
    generation: int = Field(description="Index generation that served this search")


class QueryRequest(RequestBody):
    question: Text = Field(min_length=1, description="The question (longer than RAG_MAX_QUESTION_CHARS: 413)")
    top_k: int | None = Field(
        default=None, ge=1, le=50, description="Passages given to the model (default RAG_DEFAULT_TOP_K)"
    )
    stream: bool = Field(default=False, description="Stream server-sent events: `delta` events, then one `final` event")
    filters: SearchFiltersIn | None = None
    max_tokens: int | None = Field(default=None, ge=1, le=8192, description="Capped by RAG_MAX_TOKENS")


class CitationOut(BaseModel):
    n: int = Field(description="The number used as [n] in the answer")
    document_id: int
    path: str
    page: int | None
    chunk_id: int
    quote: str = Field(description="The sentence of the passage that supports the answer best")
    document_sha256: str = Field(description="Hash of the document version the passage comes from")
    title: str | None = None


class RouteOut(BaseModel):
    """Which model answered and why (the router's decision; see README "Escalation")."""

    target: Literal["local", "external"] = "local"
    reason: str = "escalation disabled"
    rule: str = Field(default="disabled", description="the rule that decided, e.g. eligible, question_sensitive")
    detectors: list[str] | None = Field(default=None, description="detector:kind that fired (never the text)")
    labels: dict[str, int] | None = Field(default=None, description="labels of the retrieved passages -> count")
    withheld: dict[str, int] | None = Field(default=None, description="passages held back, by reason")
    passages_sent: list[int] | None = Field(default=None, description="chunk ids sent to the external model")
    model: str | None = Field(default=None, description="the external model, when it answered")


class Answerability(BaseModel):
    score: float = Field(description="0-1: does the cited passage state the answer to the question?")
    threshold: float = Field(description="RAG_ANSWERABILITY_THRESHOLD: answers below it are declined")


class QueryResponse(BaseModel):
    answer: str = Field(description="Answer with [n] citation marks; only sentences that passed the grounding check")
    citations: list[CitationOut] = Field(description="Cited passages; when status is not_found, the closest passages")
    model: str = Field(description="Model that produced the answer ('extractive' when no LLM was used)")
    request_id: str
    backend: Literal["openai", "embedded", "extractive", "external"]
    status: Literal["answered", "not_found", "declined"] = Field(
        description="not_found: no supported answer; declined: the passages are on topic but do not state the answer "
        "to this question (the answerability gate). Either way the answer says so and citations list the closest "
        "passages"
    )
    grounded: bool = Field(description="true when the answer is supported by its passages and answers the question")
    answerability: Answerability | None = Field(default=None, description="the answerability gate's decision")
    fallback: bool = Field(description="true when the model was down and the answer was extracted instead")
    notice: str | None = Field(default=None, description="Human-readable note, e.g. that a fallback was used")
    route: RouteOut = Field(default_factory=RouteOut)
    usage: dict[str, int] = Field(description="prompt_tokens, completion_tokens")
    timings_ms: dict[str, float] = Field(description="retrieval, embed, search, generation (ms)")
    dropped_sentences: int = Field(description="Generated sentences withheld by the grounding check")


class ContentPart(RequestBody):
    """One part of a message's content; only `text` parts are read, others (images) are ignored."""

    model_config = ConfigDict(strict=True, extra="allow")
    type: Name
    text: Text | None = None


class ChatMessage(RequestBody):
    model_config = ConfigDict(strict=True, extra="allow")  # OpenAI clients send `name`, `tool_calls`, ...
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: Text | list[ContentPart] | None = None


class ChatRequest(RequestBody):
    model_config = ConfigDict(strict=True, extra="allow")  # and `user`, `n`, `seed`, ... on the request
    model: Name = Field(default="private-rag", description="'private-rag' (see GET /v1/models)")
    messages: list[ChatMessage] = Field(min_length=1, description="The last user message is the question")
    stream: bool = False
    max_tokens: int | None = Field(default=None, ge=1, le=8192)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=8192)
    temperature: float | None = Field(default=None, description="Accepted for compatibility; answers are greedy")
    top_k: int | None = Field(default=None, ge=1, le=50, description="Extension: passages given to the model")


class RagExtra(BaseModel):
    """The `rag` extra field of chat completions (and of the last chunk when streaming)."""

    citations: list[CitationOut]
    status: Literal["answered", "not_found", "declined"]
    grounded: bool
    answerability: Answerability | None = None
    fallback: bool
    notice: str | None = None
    backend: Literal["openai", "embedded", "extractive", "external"]
    backend_model: str = Field(description="The model that produced the words")
    route: RouteOut
    timings_ms: dict[str, float]
    dropped_sentences: int
    request_id: str


class ChatChoiceMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int = 0
    message: ChatChoiceMessage
    finish_reason: Literal["stop", "length"] = "stop"


class ChatCompletionOut(BaseModel):
    """OpenAI Chat Completions response, plus `rag`.

    With stream: `chat.completion.chunk` events, `data: [DONE]` last."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str = Field(description="Always 'private-rag'; the generating model is rag.backend_model")
    choices: list[ChatChoice]
    usage: dict[str, int]
    rag: RagExtra


# --- identity, documents, audit -----------------------------------------------------------------


class UserIn(RequestBody):
    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._@-]+$")
    role: Role
    groups: GroupList = Field(default_factory=list)


class UserPatch(RequestBody):
    groups: GroupList | None = Field(default=None, description="Replaces the user's groups")
    disabled: bool | None = None
    role: Role | None = Field(
        default=None, description="employee or admin (auditor only on the host: 403; never your own: 403)"
    )


class UserOut(BaseModel):
    id: int
    name: str
    role: Role
    groups: list[str]
    disabled: bool


class KeyIn(RequestBody):
    name: Name | None = Field(default=None, description="A label for the key, e.g. its purpose")


class KeyOut(BaseModel):
    id: int
    user: str
    name: str | None
    prefix: str = Field(description="First characters of the key, to recognise it")
    created_at: str
    last_used_at: str | None
    revoked_at: str | None
    issued_by: str | None = Field(default=None, description="Who minted the key: an admin's name, or 'operator'")
    key: str | None = Field(default=None, description="The key itself: returned once, at creation, never again")


class DocumentOut(BaseModel):
    id: int
    path: str
    title: str | None
    collection: str
    label: Label
    groups: list[str]
    version: int
    sha256: str
    chunk_count: int


class DocumentPatch(RequestBody):
    groups: GroupList | None = Field(default=None, description="Replaces the groups allowed to read it")
    label: Label | None = None


class AuditRecordOut(BaseModel):
    seq: int
    kind: str
    ts: str
    request_id: str
    principal: str | None
    role: str | None
    groups: list[str]
    route: str
    status: int
    question: str | None
    answer: str | None
    detail: dict
    latency_ms: float
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    records: list[AuditRecordOut]
    next_cursor: int | None = Field(description="Pass as `cursor` for the next (older) page; null at the end")
