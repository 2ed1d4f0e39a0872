"""Bounds of path and query parameters: an id past what the database column holds is a 422, not a 500.

Users, keys, documents and jobs have INTEGER ids (32 bits on PostgreSQL); audit records' `seq` is a
BIGINT. SQLite's integers are 64 bits either way, so the bound is the PostgreSQL column's.
"""

from __future__ import annotations

from typing import Annotated

from annotated_types import Interval
from fastapi import Path
from pydantic import AfterValidator, StringConstraints

from api.schemas import MAX_PATH_CHARS, Name, storable_text

INT32_MAX = 2**31 - 1  # INTEGER
INT64_MAX = 2**63 - 1  # BIGINT

RowId = Annotated[int, Path(ge=1, le=INT32_MAX, description="an id as listed by the API")]
Seq = Annotated[int, Path(ge=1, le=INT64_MAX, description="an audit record's sequence number")]
UserName = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._@-]+$")]
# constraints on the type itself, so that they hold inside `X | None` query parameters too
Offset = Annotated[int, Interval(ge=0, le=INT64_MAX)]
Cursor = Annotated[int, Interval(ge=1, le=INT64_MAX)]
Status = Annotated[int, Interval(ge=100, le=599)]
QueryName = Name
QueryText = Annotated[str, StringConstraints(min_length=1, max_length=MAX_PATH_CHARS), AfterValidator(storable_text)]
