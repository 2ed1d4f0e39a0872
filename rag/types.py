"""Plain data passed between ingestion stages and the indexes."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Label(str, enum.Enum):
    public = "public"
    internal = "internal"
    confidential = "confidential"
    restricted = "restricted"


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
class IngestError:
    path: str
    error: str
