"""What the admin's Status page shows besides readiness (which its JS reads from /readyz): the live
index generation and its size on disk, and the generator and embedder this process uses."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from api.services import QueryServices
from rag.errors import RagError
from rag.settings import Settings


@dataclass(frozen=True)
class IndexStatus:
    generation: int | None
    chunks: int | None
    bytes_on_disk: int | None
    created_at: str
    problem: str | None


def index_status(services: QueryServices) -> IndexStatus:
    """The generation queries use right now (the reloaded one, not merely the newest on disk)."""
    try:
        live = services.answerer.searcher.live
        snapshot = live.get()
    except RagError as exc:
        return IndexStatus(None, None, None, "", str(exc))
    folder = Path(live.index_dir) / snapshot.manifest.folder
    size = sum((folder / name).stat().st_size for name in snapshot.manifest.files if (folder / name).is_file())
    return IndexStatus(snapshot.manifest.generation, len(snapshot.vector), size, snapshot.manifest.created_at, None)


def models_in_use(settings: Settings) -> dict[str, str]:
    """Names only: no URL, no key (the page source must hold no secret)."""
    generator = {
        "embedded": "embedded "
        + (Path(settings.llm_model_path).name if settings.llm_model_path else "SmolLM2 (packaged)"),
        "openai": f"OpenAI-compatible server, model {settings.generator_model}",
        "extractive": "extractive (sentences of the passages, no model)",
    }[settings.generator]
    return {
        "generator": generator,
        "fallback": settings.generator_fallback,
        "embedder": Path(settings.resolved_model_path).name,
    }
