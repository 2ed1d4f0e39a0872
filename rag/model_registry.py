"""The embedder model registry: every embedder version, what it was trained on, how it scored, and
which one serves. The live index manifest decides what serves (it is the atomic switch); the
registry's `active` state follows it and is reconciled from it after a crash between the two.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from indexes.durable import sha256_file
from indexes.generations import GenerationStore, Manifest
from rag.db.models import ChunkVector, EmbedderModel, utcnow
from rag.errors import ConfigError, InvalidRequestError, NotFoundError, PromotionRefusedError
from rag.settings import Settings

CANDIDATE, ACTIVE, RETIRED = "candidate", "active", "retired"
STATES = (CANDIDATE, ACTIVE, RETIRED)
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".onnx")
GATE_METRIC = "ndcg@10"
MAX_ID = 2**31 - 1


@dataclass(frozen=True)
class ModelPin:
    """What a generation's manifest records about the embedder of its vectors."""

    id: int
    sha256: str
    dim: int

    def as_dict(self) -> dict:
        return {"id": self.id, "sha256": self.sha256, "dim": self.dim}


def pin_of(model: EmbedderModel) -> ModelPin:
    return ModelPin(model.id, model.sha256, model.dim)


def weights_sha256(folder: Path) -> str:
    """SHA-256 over the folder's weight files (relative path and content hash of each, sorted): the
    same weights give the same digest wherever the folder lives; tokenizer and README do not count."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    if not files:
        raise ConfigError(f"no weight files in embedder folder {folder.name}")
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.relative_to(folder).as_posix()}\0{sha256_file(path)}\n".encode())
    return digest.hexdigest()


def _dim_of(folder: Path) -> int:
    """The embedding dimension from the folder's config (no model load): the pooling layer's width."""
    import json

    for config in (folder / "1_Pooling" / "config.json", folder / "config.json"):
        if config.is_file():
            data = json.loads(config.read_text(encoding="utf-8"))
            dim = data.get("word_embedding_dimension") or data.get("hidden_size")
            if isinstance(dim, int) and dim > 0:
                return dim
    raise ConfigError(f"cannot tell the embedding dimension of {folder.name}")


# --- reading ---------------------------------------------------------------------------------------


def base_model(session: Session, settings: Settings) -> EmbedderModel:
    """Version 1: the configured (packaged) model, registered as active on first use."""
    first = session.scalar(select(EmbedderModel).order_by(EmbedderModel.id).limit(1))
    if first is not None:
        return first
    folder = Path(settings.resolved_model_path)
    model = EmbedderModel(
        sha256=weights_sha256(folder),
        path=str(folder),
        dim=_dim_of(folder),
        state=ACTIVE,
        method="packaged",
        settings={},
        trained_on={},
        evaluation={},
        created_by="system",
        promoted_by="system",
        promoted_at=utcnow(),
    )
    session.add(model)
    session.commit()
    # two processes registering at the same moment: the lowest id wins, the other row goes
    first = session.scalar(select(EmbedderModel).order_by(EmbedderModel.id).limit(1))
    if first.id != model.id:
        session.delete(model)
        session.commit()
    return first


def get_model(session: Session, model_id: int) -> EmbedderModel:
    if not 1 <= model_id <= MAX_ID:
        raise InvalidRequestError(f"model ids are 1..{MAX_ID}")
    model = session.get(EmbedderModel, model_id)
    if model is None:
        raise NotFoundError(f"no embedder model {model_id}")
    return model


def list_models(session: Session, settings: Settings) -> list[EmbedderModel]:
    base_model(session, settings)
    reconcile(session, settings)
    return list(session.scalars(select(EmbedderModel).order_by(EmbedderModel.id)))


def model_of_manifest(session: Session, settings: Settings, manifest: Manifest | None) -> EmbedderModel | None:
    """The registry row a generation names (an unpinned, older manifest names version 1); None when
    the manifest names a model the registry does not hold."""
    base = base_model(session, settings)
    if manifest is None or not manifest.model:
        return base
    model_id = manifest.model.get("id")
    return session.get(EmbedderModel, model_id) if isinstance(model_id, int) else None


def serving_model(session: Session, settings: Settings) -> EmbedderModel:
    """The model whose vectors the live generation holds (the one new chunks are embedded with)."""
    manifest = GenerationStore(settings.index_dir).current()
    model = model_of_manifest(session, settings, manifest)
    if model is None:
        raise ConfigError(f"the live index names embedder {manifest.model.get('id')}, which the registry lacks")
    return model


def active_model(session: Session, settings: Settings) -> EmbedderModel:
    reconcile(session, settings)
    return serving_model(session, settings)


def reconcile(session: Session, settings: Settings) -> None:
    """The registry's `active` follows the live manifest (a crash between switch and commit)."""
    try:
        serving = serving_model(session, settings)
    except ConfigError:
        return
    changed = False
    for model in session.scalars(select(EmbedderModel).where(EmbedderModel.state == ACTIVE)):
        if model.id != serving.id:
            model.state, changed = CANDIDATE, True
    if serving.state != ACTIVE:
        serving.state, changed = ACTIVE, True
    if changed:
        session.commit()


def protected_generations(session: Session) -> frozenset[str]:
    """Index folders kept for an instant rollback: the last ones of previously active models."""
    rows = session.scalars(
        select(EmbedderModel.generation).where(EmbedderModel.state == CANDIDATE, EmbedderModel.generation.is_not(None))
    )
    return frozenset(r for r in rows if r)


# --- registering and evaluating --------------------------------------------------------------------


def check_model_folder(settings: Settings, folder: Path) -> Path:
    """Candidate weights live under the data folder's models/ only."""
    root = settings.models_dir.resolve()
    folder = folder.resolve()
    if not folder.is_relative_to(root) or not folder.is_dir():
        raise InvalidRequestError("candidate embedders must be folders under the data folder's models/")
    return folder


def register_candidate(
    session: Session,
    settings: Settings,
    folder: Path,
    *,
    parent: EmbedderModel,
    method: str,
    method_settings: dict,
    trained_on: dict,
    created_by: str,
) -> EmbedderModel:
    folder = check_model_folder(settings, folder)
    dim = _dim_of(folder)
    if dim != parent.dim:
        raise InvalidRequestError(f"the candidate's dimension {dim} differs from its parent's {parent.dim}")
    model = EmbedderModel(
        parent_id=parent.id,
        sha256=weights_sha256(folder),
        path=str(folder),
        dim=dim,
        state=CANDIDATE,
        method=method[:100],
        settings=method_settings,
        trained_on=trained_on,
        evaluation={},
        created_by=created_by[:200],
    )
    session.add(model)
    session.commit()
    return model


def record_evaluation(
    session: Session, model: EmbedderModel, name: str, candidate: dict, active: EmbedderModel, baseline: dict
) -> dict:
    """Stores one evaluation of `model` beside the active model's score on the same set."""
    entry = {
        "candidate": candidate,
        "active": baseline,
        "active_id": active.id,
        "gain": round(float(candidate.get(GATE_METRIC, 0.0)) - float(baseline.get(GATE_METRIC, 0.0)), 6),
        "at": utcnow().isoformat(),
    }
    model.evaluation = {**(model.evaluation or {}), name: entry}
    session.commit()
    return entry


def gate_reasons(model: EmbedderModel, active: EmbedderModel, min_gain: float) -> list[str]:
    """Why the evaluation gate refuses `model` (empty: it passes): every evaluation against the active
    model must show a gain of at least `min_gain` nDCG@10, and there must be at least one."""
    current = {k: v for k, v in (model.evaluation or {}).items() if v.get("active_id") == active.id}
    if not current:
        return [f"no evaluation against the active model {active.id}: run `rag models evaluate {model.id}`"]
    reasons = []
    for name, entry in sorted(current.items()):
        gain = float(entry.get("gain", 0.0))
        if gain < min_gain:
            reasons.append(
                f"{name}: {GATE_METRIC} {entry['candidate'].get(GATE_METRIC, 0):.4f} vs active "
                f"{entry['active'].get(GATE_METRIC, 0):.4f} (gain {gain:+.4f} < {min_gain:.4f})"
            )
    return reasons


# --- promotion and rollback (state changes; the index work is ingest/reembed.py's) -----------------


def check_promotable(session: Session, settings: Settings, model: EmbedderModel, *, force: bool) -> EmbedderModel:
    """The active model, after checking that `model` may replace it; raises PromotionRefusedError."""
    active = active_model(session, settings)
    if model.id == active.id:
        raise PromotionRefusedError(f"model {model.id} is already active")
    if model.dim != active.dim:
        raise PromotionRefusedError(f"model {model.id} has dimension {model.dim}, the active one {active.dim}")
    if not Path(model.path).is_dir():
        raise PromotionRefusedError(f"model {model.id}'s folder is gone")
    if not force:
        reasons = gate_reasons(model, active, settings.model_promote_min_gain)
        if reasons:
            raise PromotionRefusedError(
                f"model {model.id} does not beat active model {active.id}: "
                + "; ".join(reasons)
                + " (--force overrides)"
            )
    return active


def mark_promoted(
    session: Session,
    settings: Settings,
    model: EmbedderModel,
    previous: EmbedderModel,
    generation: str,
    previous_generation: str | None,
    actor: str,
) -> list[int]:
    """After the manifest switched from `previous_generation` to `generation`: states follow, the
    previous model keeps its last generation for a rollback, and models beyond the rollback window
    are retired (their kept generation and extra vectors go). Returns the ids retired."""
    now = utcnow()
    if previous.id != model.id:
        model.previous_id = previous.id
        previous.state, previous.generation = CANDIDATE, previous_generation
    model.state, model.generation, model.promoted_by, model.promoted_at = ACTIVE, generation, actor[:200], now
    model.retired_at = None
    session.flush()
    kept = session.scalars(
        select(EmbedderModel)
        .where(EmbedderModel.state == CANDIDATE, EmbedderModel.generation.is_not(None))
        .order_by(EmbedderModel.promoted_at.desc(), EmbedderModel.id.desc())
    ).all()
    retired = [m for m in kept[settings.model_keep_previous :]]
    for old in retired:
        _retire(session, old, now)
    session.commit()
    return [m.id for m in retired]


def _retire(session: Session, model: EmbedderModel, now) -> None:
    model.state, model.retired_at, model.generation = RETIRED, now, None
    session.query(ChunkVector).filter(ChunkVector.model_id == model.id).delete(synchronize_session=False)


def retire(session: Session, settings: Settings, model: EmbedderModel) -> EmbedderModel:
    if model.id == active_model(session, settings).id:
        raise PromotionRefusedError(f"model {model.id} is active: promote or roll back to another one first")
    if model.id == base_model(session, settings).id:
        raise PromotionRefusedError("version 1 (the packaged model) is never retired")
    _retire(session, model, utcnow())
    session.commit()
    return model


def rollback_target(session: Session, settings: Settings) -> tuple[EmbedderModel, EmbedderModel, Manifest]:
    """(active model, the one before it, its kept generation's manifest); refuses when there is none."""
    active = active_model(session, settings)
    if active.previous_id is None:
        raise PromotionRefusedError(f"model {active.id} has no previous model to roll back to")
    previous = get_model(session, active.previous_id)
    if previous.state == RETIRED or not previous.generation:
        raise PromotionRefusedError(f"model {previous.id} was retired: promote it again (re-embeds) instead")
    manifest = GenerationStore(settings.index_dir).kept(previous.generation)
    if manifest is None:
        raise PromotionRefusedError(f"the generation of model {previous.id} is gone: promote it again instead")
    return active, previous, manifest


def mark_rolled_back(session: Session, active: EmbedderModel, previous: EmbedderModel, actor: str) -> None:
    now = utcnow()
    previous.state, previous.promoted_by, previous.promoted_at = ACTIVE, actor[:200], now
    _retire(session, active, now)
    session.commit()


# --- views ------------------------------------------------------------------------------------------


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def describe(model: EmbedderModel) -> dict:
    """A model as `rag models show --json` prints it and the API returns it (no file system path:
    the folder is named relative to the models folder)."""
    return {
        "id": model.id,
        "parent_id": model.parent_id,
        "state": model.state,
        "sha256": model.sha256,
        "dim": model.dim,
        "folder": Path(model.path).name,
        "method": model.method,
        "settings": model.settings or {},
        "trained_on": model.trained_on or {},
        "evaluation": model.evaluation or {},
        "generation": model.generation,
        "previous_id": model.previous_id,
        "created_by": model.created_by,
        "promoted_by": model.promoted_by,
        "created_at": _iso(model.created_at),
        "promoted_at": _iso(model.promoted_at),
        "retired_at": _iso(model.retired_at),
    }
