"""The seams of the product as typed Protocols: what the core needs of each replaceable part.

Concrete parts (sentence-transformers, FAISS, bm25 segments, the policy router, the hash-chained
audit log, each generator backend) are built in a composition root and passed in as these; tests
pass deterministic fakes. tests/test_contracts.py holds the contract every implementation passes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:  # numpy and the prompt are only named in signatures: importing this module stays free
    import numpy as np

    from rag.audit import AuditEntry, VerifyResult
    from rag.auth.principal import Principal
    from rag.prompting import Prompt
    from rag.types import Passage, RouteDecision, Usage


@runtime_checkable
class Embedder(Protocol):
    dim: int
    max_tokens: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-normalised float32 vectors, one row per text."""
        ...


@runtime_checkable
class Generator(Protocol):
    backend: str  # "openai", "embedded", "extractive" or "external"
    model: str  # the model that produced the words, as its server names it

    def stream(self, prompt: Prompt, max_tokens: int, usage: Usage) -> Iterator[str]:
        """Text pieces as they are produced; fills `usage` when done.

        Raises GeneratorUnavailableError (cannot reach or failed) or GeneratorTimeoutError.
        """
        ...

    def ready(self) -> bool:
        """Cheap liveness check for /readyz."""
        ...


@runtime_checkable
class VectorIndex(Protocol):
    """Nearest chunks by inner product; `allowed_ids` restricts the search before ranking."""

    dim: int

    def __len__(self) -> int: ...

    def ids(self) -> np.ndarray:
        """Sorted chunk ids held."""
        ...

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None: ...

    def remove(self, ids: np.ndarray) -> int:
        """Removes those present; returns how many were."""
        ...

    def search(
        self, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each of shape (len(queries), k'), best first; id -1 pads missing hits."""
        ...

    def save(self, folder: Path) -> None: ...


@runtime_checkable
class KeywordIndex(Protocol):
    """Lexical ranking; immutable: `updated` returns a new index and leaves readers' copy alone."""

    def __len__(self) -> int: ...

    def ids(self) -> np.ndarray:
        """Sorted chunk ids held."""
        ...

    def updated(self, add_ids: np.ndarray, add_texts: Sequence[str], remove_ids: np.ndarray) -> KeywordIndex: ...

    def search(self, query: str, k: int, allowed_ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), one-dimensional, best first, only ids that match at least one term."""
        ...

    def save(self, folder: Path) -> None: ...


@runtime_checkable
class Router(Protocol):
    """Decides which model answers: local unless a policy proves the question may leave."""

    @property
    def enabled(self) -> bool: ...

    def decide(
        self,
        question: str,
        passages: list[Passage],
        principal: Principal | None,
        history: list[dict[str, str]] | None = None,
    ) -> RouteDecision:
        """Never raises: anything unexpected keeps the query local."""
        ...


@runtime_checkable
class AuditLog(Protocol):
    """Where every audited request leaves its record; a failed append withholds the response."""

    def append(self, entry: AuditEntry) -> object:
        """Writes one chained record; raises AuditUnavailableError when it cannot."""
        ...

    def verify(self, checkpoint: dict | None = None) -> VerifyResult:
        """Walks the whole log; names the first record that does not verify."""
        ...

    def count(self) -> int: ...
