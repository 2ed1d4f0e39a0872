"""The embedders of one process, by registry model: a query is embedded by the model its generation
was built with, and a generation whose pinned model this process cannot load exactly is refused.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from indexes.generations import GenerationStore, Manifest
from rag import model_registry as registry
from rag.db.models import EmbedderModel
from rag.errors import ConfigError, ModelMismatchError
from rag.protocols import Embedder
from rag.settings import Settings

_LOADED = 3  # models kept in memory: the serving one, the one before it (in-flight requests), one spare


class ModelEmbedders:
    """Loads registry models on demand (weights verified against their SHA-256) and keeps a few.

    `base` is an embedder already loaded for version 1 (the configured model); with `can_load=False`
    only it is available, so any generation built by another model is refused. It is also an
    Embedder itself: the live generation's model (for callers that embed beside a search)."""

    def __init__(
        self,
        settings: Settings,
        factory: sessionmaker[Session],
        base: Embedder | None = None,
        *,
        can_load: bool = True,
    ) -> None:
        self.settings = settings
        self.factory = factory
        self.base = base
        self.can_load = can_load
        self._loaded: OrderedDict[int, Embedder] = OrderedDict()
        self._by_manifest: dict[tuple, tuple[registry.ModelPin, Embedder]] = {}
        self._lock = threading.Lock()
        self._base_id: int | None = None

    # -- by registry row -----------------------------------------------------------------------

    def base_id(self) -> int:
        if self._base_id is None:
            with self.factory() as session:
                self._base_id = registry.base_model(session, self.settings).id
        return self._base_id

    def get(self, model: EmbedderModel) -> Embedder:
        """The embedder of `model`, loading (and verifying) it when this process has not yet."""
        with self._lock:
            if model.id in self._loaded:
                self._loaded.move_to_end(model.id)
                return self._loaded[model.id]
        if self.base is not None and model.id == self.base_id():
            embedder = self.base
        elif not self.can_load:
            raise ModelMismatchError(
                f"embedder {model.id} (sha256 {model.sha256[:12]}) is not the one this process loaded "
                f"({self.base_id()}); refusing to mix models"
            )
        else:
            embedder = self._load(model)
        if embedder.dim != model.dim:
            raise ModelMismatchError(
                f"embedder {model.id} gives {embedder.dim} dimensions, the registry says {model.dim}"
            )
        with self._lock:
            self._loaded[model.id] = embedder
            while len(self._loaded) > _LOADED:
                self._loaded.popitem(last=False)
        return embedder

    def _load(self, model: EmbedderModel) -> Embedder:
        from rag.embedder import load_embedder

        folder = Path(model.path)
        try:
            digest = registry.weights_sha256(folder)
        except (ConfigError, OSError) as exc:
            raise ModelMismatchError(f"embedder {model.id}'s weights cannot be read: {exc}") from exc
        if digest != model.sha256:
            raise ModelMismatchError(
                f"embedder {model.id}'s weights changed on disk (sha256 {digest[:12]}, registered "
                f"{model.sha256[:12]}); refusing to embed with them"
            )
        return load_embedder(self.settings, model_path=str(folder))

    # -- by generation -------------------------------------------------------------------------

    def for_manifest(self, manifest: Manifest) -> Embedder:
        """The embedder a generation's vectors were built with; ModelMismatchError when this process
        cannot have exactly that one."""
        key = (manifest.generation, manifest.folder, tuple(sorted(manifest.model.items())))
        cached = self._by_manifest.get(key)
        if cached is not None:
            return cached[1]
        with self.factory() as session:
            model = registry.model_of_manifest(session, self.settings, manifest)
            if model is None:
                raise ModelMismatchError(
                    f"index generation {manifest.generation} was built by embedder {manifest.model.get('id')}, "
                    "which the model registry does not hold; refusing to search it"
                )
            session.expunge(model)
        pin = registry.pin_of(model)
        if manifest.model and (manifest.model.get("sha256") != pin.sha256 or manifest.model.get("dim") != pin.dim):
            raise ModelMismatchError(
                f"index generation {manifest.generation} names embedder {pin.id} with sha256 "
                f"{str(manifest.model.get('sha256'))[:12]}, but the registry's has {pin.sha256[:12]}; "
                "refusing to search it"
            )
        embedder = self.get(model)
        if len(self._by_manifest) > 16:
            self._by_manifest.clear()
        self._by_manifest[key] = (pin, embedder)
        return embedder

    def serving(self) -> tuple[registry.ModelPin, Embedder]:
        """The live generation's model and its embedder (version 1 before anything was published)."""
        manifest = GenerationStore(self.settings.index_dir).current()
        if manifest is None:
            with self.factory() as session:
                model = registry.base_model(session, self.settings)
                session.expunge(model)
            return registry.pin_of(model), self.get(model)
        embedder = self.for_manifest(manifest)
        key = (manifest.generation, manifest.folder, tuple(sorted(manifest.model.items())))
        return self._by_manifest[key][0], embedder

    # -- Embedder: the serving model --------------------------------------------------------------

    @property
    def dim(self) -> int:
        return self.serving()[1].dim

    @property
    def max_tokens(self) -> int:
        return self.serving()[1].max_tokens

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.serving()[1].embed(texts)

    def embed_query(self, text: str) -> np.ndarray:
        """One query on the serving model's single-query path (rag.embedder), when it has one."""
        embedder = self.serving()[1]
        single = getattr(embedder, "embed_query", None)
        return single(text) if single is not None else embedder.embed([text])[0]
