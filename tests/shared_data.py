"""The shared, read-only data sets beside the clone (../shared): real third-party documents and BEIR
evaluation sets that the repository does not ship.

A new user's clone has no ../shared, so a test that needs it skips with one line naming the missing
path. CI sets RAG_REQUIRE_SHARED=1: there a missing path fails the test instead of skipping it.

RAG_TEST_SHARED points the whole shared root elsewhere; RAG_TEST_DOCS_SAMPLE and RAG_TEST_SCIFACT
override the two data sets one by one (they win over RAG_TEST_SHARED).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REQUIRE_SHARED = os.environ.get("RAG_REQUIRE_SHARED") == "1"
# data sets that can be pointed elsewhere one by one: leading path parts -> environment variable
_OVERRIDES = {("docs-sample",): "RAG_TEST_DOCS_SAMPLE", ("eval", "scifact"): "RAG_TEST_SCIFACT"}


def shared_root() -> Path:
    return Path(os.environ.get("RAG_TEST_SHARED") or REPO.parent / "shared")


def locate(*parts: str) -> tuple[Path, str]:
    """Where ../shared/<parts> is (it may not exist), and the variable that moves it."""
    for prefix, variable in _OVERRIDES.items():
        if parts[: len(prefix)] == prefix and os.environ.get(variable):
            return Path(os.environ[variable]).joinpath(*parts[len(prefix) :]), variable
    return shared_root().joinpath(*parts), "RAG_TEST_SHARED"


def shared_path(*parts: str) -> Path:
    """../shared/<parts>, or a skip (a failure under RAG_REQUIRE_SHARED=1) naming what is missing."""
    path, variable = locate(*parts)
    if not path.exists():
        message = f"shared data missing: {path} (../shared/{'/'.join(parts)}; moved by {variable})"
        if REQUIRE_SHARED:
            pytest.fail(f"{message} and RAG_REQUIRE_SHARED=1", pytrace=False)
        pytest.skip(message)
    return path
