"""Promotion without downtime and rollback, with the real embedder and a real second model (the
packaged one with perturbed weights, saved by sentence-transformers), on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from indexes.generations import MANIFEST, GenerationStore
from ingest.indexing import check
from ingest.reembed import Promoter
from ingest.vectors import FILL_BATCH
from rag import model_registry as registry
from rag.db.models import Chunk, ChunkVector, IngestionJob
from rag.errors import ModelMismatchError
from rag.model_loader import ModelEmbedders
from rag.model_promotion import request_promotion, rollback
from rag.search import Searcher
from rag.service import build_searcher

from . import fixtures
from .helpers import HANDBOOK, copy_tree, run_job

QUERIES = [
    "How many vacation days do employees get?",
    "Who approves expense reports?",
    "password rules for laptops",
    "what to do on the first day",
    "code of conduct harassment",
]


def add_candidate(settings, factory, source, name="perturbed"):
    folder = settings.models_dir / "embedders" / name
    shutil.copytree(source, folder)
    with factory() as session:
        base = registry.base_model(session, settings)
        model = registry.register_candidate(
            session,
            settings,
            folder,
            parent=base,
            method="perturbed",
            method_settings={"noise": 0.25},
            trained_on={},
            created_by="tester",
        )
        return model.id


def promote(settings, db, base_embedder, model_id, *, force=True):
    engine, factory = db
    with factory() as session:
        job = request_promotion(session, settings, model_id, "tester", force=force, state="running")
    return Promoter(settings, engine, factory, ModelEmbedders(settings, factory, base=base_embedder)).run(job.id)


def rankings(searcher: Searcher) -> dict[str, tuple[int, list[tuple[int, float]]]]:
    out = {}
    for q in QUERIES:
        found = searcher.search(q, 8)
        out[q] = (found.generation, [(p.chunk_id, p.score) for p in found.passages])
    return out


@pytest.fixture
def handbook(settings, db, real_embedder, tmp_path):
    run_job(settings, db, real_embedder, copy_tree(HANDBOOK, tmp_path / "hb"))
    return tmp_path / "hb"


def test_promotion_switches_atomically_and_queries_see_one_generation(
    settings, db, real_embedder, handbook, perturbed_model
):
    _, factory = db
    searcher = build_searcher(settings, factory, real_embedder)
    searcher.live.check_every_s = 0.0
    before = rankings(searcher)
    model_id = add_candidate(settings, factory, perturbed_model)

    seen: list[tuple[str, int, list]] = []
    done = threading.Event()

    def ask() -> None:
        while not done.is_set():
            for q in QUERIES:
                found = searcher.search(q, 8)
                seen.append((q, found.generation, [(p.chunk_id, p.score) for p in found.passages]))

    asker = threading.Thread(target=ask)
    asker.start()
    try:
        result = promote(settings, db, real_embedder, model_id)
        time.sleep(0.5)
    finally:
        done.set()
        asker.join()
    after = rankings(searcher)
    old_generation = before[QUERIES[0]][0]
    assert result.generation > old_generation and after[QUERIES[0]][0] == result.generation
    assert any(after[q][1] != before[q][1] for q in QUERIES), "the second model ranks like the first"
    # every answer came from one generation with its own model: the old ranking or the new one, never a mix
    for q, generation, ranking in seen:
        assert (generation, ranking) in (before[q], after[q]), (q, generation)
    assert {g for _, g, _ in seen} >= {old_generation}
    manifest = GenerationStore(settings.index_dir).current()
    with factory() as session:
        model = registry.get_model(session, model_id)
        assert manifest.model == {"id": model.id, "sha256": model.sha256, "dim": 384}
        assert model.state == "active" and model.promoted_by == "tester" and model.previous_id == 1
        assert registry.get_model(session, 1).state == "candidate"  # kept for a rollback
        assert session.scalars(select(IngestionJob).where(IngestionJob.kind == "reembed")).one().done == len(
            session.scalars(select(Chunk.id)).all()
        )
    assert check(factory, settings.index_dir) == []


def test_rollback_restores_the_previous_ranking_exactly_and_ingest_follows_the_active_model(
    settings, db, real_embedder, handbook, perturbed_model, tmp_path
):
    engine, factory = db
    searcher = build_searcher(settings, factory, real_embedder)
    searcher.live.check_every_s = 0.0
    before = rankings(searcher)
    model_id = add_candidate(settings, factory, perturbed_model)
    promote(settings, db, real_embedder, model_id)
    promoted = rankings(searcher)

    # an ingest after the promotion embeds new chunks with the active model only
    extra = handbook / "extra.md"
    extra.write_text("# Parking\n\n" + "\n\n".join(fixtures.paragraphs(3, 4)), encoding="utf-8")
    run_job(settings, db, real_embedder, handbook)
    with factory() as session:
        new_ids = session.scalars(select(Chunk.id).where(Chunk.embedder_id == model_id)).all()
        assert (
            new_ids
            and not session.scalars(
                select(ChunkVector.chunk_id).where(ChunkVector.chunk_id.in_(new_ids), ChunkVector.model_id == 1)
            ).all()
        )

    out = rollback(settings, engine, factory, "tester")
    assert out["from_id"] == model_id and out["to_id"] == 1
    restored = rankings(searcher)
    assert restored == before  # same generation, same model, same scores: exactly the previous ranking
    assert promoted != before
    with factory() as session:
        assert registry.get_model(session, model_id).state == "retired"
        assert registry.get_model(session, 1).state == "active"
        assert not session.scalars(select(ChunkVector).where(ChunkVector.model_id == model_id)).all()

    # the next publish catches the kept generation up, embedding the new chunks with model 1
    run_job(settings, db, real_embedder, handbook)
    assert check(factory, settings.index_dir) == []
    with factory() as session:
        filled = session.scalars(
            select(ChunkVector.chunk_id).where(ChunkVector.chunk_id.in_(new_ids), ChunkVector.model_id == 1)
        ).all()
    assert sorted(filled) == sorted(new_ids)
    assert GenerationStore(settings.index_dir).current().model["id"] == 1


def test_a_generation_naming_another_model_is_refused(settings, db, real_embedder, handbook, perturbed_model):
    _, factory = db
    model_id = add_candidate(settings, factory, perturbed_model)
    promote(settings, db, real_embedder, model_id)

    # a process that has only version 1 loaded (and may not load another) refuses the new generation
    fixed = ModelEmbedders(settings, factory, base=real_embedder, can_load=False)
    searcher = Searcher(fixed, factory, settings.index_dir, models=fixed)
    with pytest.raises(ModelMismatchError, match="not the one this process loaded"):
        searcher.search("vacation days")

    manifest_path = settings.index_dir / MANIFEST
    original = manifest_path.read_bytes()
    tampered = json.loads(original)
    tampered["model"]["sha256"] = "0" * 64
    manifest_path.write_text(json.dumps(tampered))
    with pytest.raises(ModelMismatchError, match="refusing to search it"):
        build_searcher(settings, factory, real_embedder).search("vacation days")
    tampered["model"] = {"id": 99, "sha256": "1" * 64, "dim": 384}
    manifest_path.write_text(json.dumps(tampered))
    with pytest.raises(ModelMismatchError, match="does not hold"):
        build_searcher(settings, factory, real_embedder).search("vacation days")
    manifest_path.write_bytes(original)

    # weights changed on disk after registration: never loaded
    weights = settings.models_dir / "embedders" / "perturbed" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelMismatchError, match="changed on disk"):
        build_searcher(settings, factory, real_embedder).search("vacation days")


def candidate_folder(settings):
    return settings.models_dir / "embedders" / "perturbed"


def _embed_in_a_new_process(folder, texts):
    script = (
        "import json, sys, numpy as np\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})\n"
        "from rag.embedder import SentenceTransformerEmbedder\n"
        "texts = json.load(sys.stdin)\n"
        "np.save(sys.stdout.buffer, SentenceTransformerEmbedder(sys.argv[1], dtype='float32').embed(texts))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(folder)], input=json.dumps(texts).encode(), capture_output=True, check=True
    )
    return np.load(io.BytesIO(out.stdout))


def test_kill_during_reembedding_resumes_to_the_same_result(
    settings, db, cli_env, fake_embedder, perturbed_model, tmp_path
):
    """The ingest uses the fake embedder (fast); the re-embedding is the real candidate's, killed once."""
    _, factory = db
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for n in range(100):
        (corpus / f"doc-{n:02d}.md").write_text(
            f"# Chapter {n}\n\n" + "\n\n".join(fixtures.paragraphs(900 + n, 12)), encoding="utf-8"
        )
    run_job(settings, db, fake_embedder, corpus)
    model_id = add_candidate(settings, factory, perturbed_model)
    with factory() as session:
        ids = sorted(session.scalars(select(Chunk.id)).all())
    assert len(ids) > 4 * FILL_BATCH

    cmd = [sys.executable, "-m", "cli", "models", "promote", str(model_id), "--force", "--json"]
    # one fixed embedder path for both runs and the check below: which path the calibration picks
    # varies with the CPU and with timing noise (onnx-int8 here, bfloat16 in the test process before)
    cli_env = {**cli_env, "RAG_EMBED_DTYPE": "float32"}
    proc = subprocess.Popen(cmd, env=cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    killed = False
    while time.monotonic() < deadline and proc.poll() is None:
        with factory() as session:
            stored = len(session.scalars(select(ChunkVector.chunk_id).where(ChunkVector.model_id == model_id)).all())
        if stored >= FILL_BATCH:
            proc.send_signal(signal.SIGKILL)
            killed = True
            break
        time.sleep(0.05)
    proc.wait()
    assert killed, "the promotion finished before the kill could land"
    with factory() as session:
        partial = len(session.scalars(select(ChunkVector.chunk_id).where(ChunkVector.model_id == model_id)).all())
    assert FILL_BATCH <= partial < len(ids)
    assert GenerationStore(settings.index_dir).current().model.get("id", 1) == 1  # still the old generation

    final = subprocess.run(cmd, env=cli_env, capture_output=True, text=True, timeout=900)
    assert final.returncode == 0, final.stderr
    result = json.loads(final.stdout)
    assert result["model_id"] == model_id and result["embedded"] == len(ids) - partial
    assert check(factory, settings.index_dir) == []
    assert GenerationStore(settings.index_dir).current().model["id"] == model_id

    # the same vectors as one uninterrupted run: the candidate over the same fixed batches
    from rag.embedder import SentenceTransformerEmbedder

    candidate = SentenceTransformerEmbedder(str(settings.models_dir / "embedders" / "perturbed"), dtype="float32")
    with factory() as session:
        text_of = dict(session.execute(select(Chunk.id, Chunk.text)).all())
        stored = dict(
            session.execute(
                select(ChunkVector.chunk_id, ChunkVector.embedding).where(ChunkVector.model_id == model_id)
            ).all()
        )
    assert sorted(stored) == ids
    for start in range(0, len(ids), FILL_BATCH):
        batch = ids[start : start + FILL_BATCH]
        expected = candidate.embed([text_of[i] for i in batch])
        got = np.stack([np.frombuffer(stored[i], dtype="<f4") for i in batch])
        agree = np.sum(expected * got, axis=1)
        # on a failure: is a stored vector another chunk's (a mix-up) or no chunk's (a wrong model)?
        if np.min(agree) <= 0.9999:
            best = np.max(got @ expected.T, axis=1)
            fresh = _embed_in_a_new_process(candidate_folder(settings), [text_of[i] for i in batch])
            new_process = np.sum(fresh * got, axis=1)
            raise AssertionError(
                f"path {candidate.path}; stored vs expected {np.round(agree, 3).tolist()}; stored vs best other "
                f"{np.round(best, 3).tolist()}; stored vs a new process {np.round(new_process, 3).tolist()}"
            )
