"""The query side's heavy parts (embedder, generator), built once per API process on first use."""

from __future__ import annotations

import threading

from sqlalchemy.orm import Session, sessionmaker

from rag.answering import QuestionAnswerer
from rag.protocols import Embedder, Generator
from rag.settings import Settings


class QueryServices:
    def __init__(
        self,
        settings: Settings,
        factory: sessionmaker[Session],
        *,
        embedder: Embedder | None = None,
        generator: Generator | None = None,
    ) -> None:
        self.settings = settings
        self.factory = factory
        self._embedder = embedder
        self._generator = generator
        self._answerer: QuestionAnswerer | None = None
        self._lock = threading.Lock()

    @property
    def answerer(self) -> QuestionAnswerer:
        if self._answerer is None:
            with self._lock:
                if self._answerer is None:
                    from rag.embedder import load_embedder
                    from rag.service import build_answerer

                    embedder = self._embedder or load_embedder(self.settings)
                    self._answerer = build_answerer(self.settings, self.factory, embedder, self._generator)
        return self._answerer

    def warm(self) -> None:
        """Load models before serving, so the first user does not wait for them."""
        _ = self.answerer
