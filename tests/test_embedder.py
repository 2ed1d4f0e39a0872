"""The embedder's paths: chosen among measured candidates, accurate on real texts, safe fallbacks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from rag.embed_calibration import (
    BULK_MIN_COSINE,
    QUERY_MIN_COSINE,
    SWITCH_MARGIN,
    Choice,
    calibrate,
    choose,
    read_cache,
    write_cache,
)
from rag.errors import ConfigError
from rag.settings import Settings
from tests.shared_data import shared_path


def figures(tps: float, ms: float, cos: float, agrees: dict[str, float]) -> dict:
    return {"texts_per_s": tps, "query_ms": ms, "min_cosine": cos, "agrees_with": agrees}


MEASURED = {
    "float32": figures(10, 16, 1.0, {"float32": 1.0, "bfloat16": 0.9999, "onnx-float32": 1.0, "onnx-int8": 0.992}),
    "bfloat16": figures(
        25, 25, 0.9999, {"float32": 0.9999, "bfloat16": 1.0, "onnx-float32": 0.9999, "onnx-int8": 0.99}
    ),
    "onnx-float32": figures(12, 6, 1.0, {"float32": 1.0, "bfloat16": 0.9999, "onnx-float32": 1.0, "onnx-int8": 0.992}),
    "onnx-int8": figures(40, 4, 0.985, {"float32": 0.985, "bfloat16": 0.99, "onnx-float32": 0.992, "onnx-int8": 1.0}),
}


def test_choice_is_the_fastest_accurate_bulk_path_and_the_fastest_agreeing_query_path():
    choice = choose(MEASURED)
    assert choice.bulk == "bfloat16"  # int8 is faster but below the cosine bar
    assert choice.query == "onnx-float32"  # faster than bf16 for one text, agrees to 0.9999
    assert MEASURED["onnx-int8"]["min_cosine"] < BULK_MIN_COSINE


def test_an_accurate_int8_path_wins_and_then_the_query_path_must_agree_with_it():
    measured = {k: dict(v) for k, v in MEASURED.items()}
    measured["onnx-int8"]["min_cosine"] = 0.995
    choice = choose(measured)
    assert choice.bulk == "onnx-int8"
    # onnx-float32 is not within QUERY_MIN_COSINE of int8 vectors: the int8 path serves queries too
    assert measured["onnx-float32"]["agrees_with"]["onnx-int8"] < QUERY_MIN_COSINE
    assert choice.query == "onnx-int8"


def test_the_default_bulk_path_stays_unless_another_is_clearly_faster():
    measured = {k: dict(v) for k, v in MEASURED.items()}
    measured["onnx-float32"]["texts_per_s"] = 27  # within the noise of a short calibration
    assert choose(measured, default="bfloat16").bulk == "bfloat16"
    assert choose(measured, default="float32").bulk == "onnx-float32"  # 2.7x fp32
    measured["onnx-float32"]["texts_per_s"] = 25 * SWITCH_MARGIN + 1
    assert choose(measured, default="bfloat16").bulk == "onnx-float32"


def test_choice_respects_the_allowed_paths_and_falls_back_to_fp32():
    assert choose(MEASURED, bulk=["float32"], query=["float32"]) == Choice(
        "float32", "float32", choose(MEASURED).measured
    )
    # nothing accurate among the allowed: fp32, the reference
    assert choose(MEASURED, bulk=["onnx-int8"]).bulk == "float32"


def test_calibrate_measures_every_candidate_and_rejects_inaccurate_ones():
    rng = np.random.default_rng(0)
    basis = {}

    def exact(texts):
        out = []
        for t in texts:
            if t not in basis:
                basis[t] = rng.standard_normal(16).astype(np.float32)
            out.append(basis[t] / np.linalg.norm(basis[t]))
        return np.array(out)

    def noisy(texts):
        vectors = exact(texts) + 0.5 * np.random.default_rng(1).standard_normal((len(texts), 16)).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    choice = calibrate({"float32": exact, "onnx-int8": noisy}, rounds=1)
    assert set(choice.measured) == {"float32", "onnx-int8"}
    assert choice.measured["onnx-int8"]["min_cosine"] < BULK_MIN_COSINE
    assert choice.bulk == "float32" and choice.query == "float32"
    assert all(choice.measured[n]["texts_per_s"] > 0 and choice.measured[n]["query_ms"] > 0 for n in choice.measured)


def test_calibration_cache_round_trip_and_damage(tmp_path: Path):
    file = tmp_path / "embedder-calibration.json"
    write_cache(file, "k1", Choice("bfloat16", "onnx-float32", {"float32": {"texts_per_s": 1.0}}))
    got = read_cache(file, "k1")
    assert got is not None and got.cached and (got.bulk, got.query) == ("bfloat16", "onnx-float32")
    assert read_cache(file, "another-cpu") is None
    file.write_text("{not json")
    assert read_cache(file, "k1") is None  # a damaged cache means a new calibration, not a failure
    write_cache(file, "k2", Choice("float32", "float32"))
    assert json.loads(file.read_text())["k2"]["bulk"] == "float32"


def test_settings_accept_the_new_paths_and_reject_others(monkeypatch):
    for value in ("auto", "float32", "bfloat16", "int8", "onnx"):
        monkeypatch.setenv("RAG_EMBED_DTYPE", value)
        monkeypatch.setenv("RAG_EMBED_QUERY_DTYPE", value)
        settings = Settings(_env_file=None)
        assert (settings.embed_dtype, settings.embed_query_dtype) == (value, value)
    monkeypatch.setenv("RAG_EMBED_DTYPE", "fp16")
    with pytest.raises(ValidationError):
        Settings(_env_file=None)


def test_unknown_dtype_is_a_config_error():
    from rag.embedder import SentenceTransformerEmbedder

    with pytest.raises(ConfigError):
        SentenceTransformerEmbedder(Settings(_env_file=None).resolved_model_path, dtype="fp16")


@pytest.fixture(scope="module")
def scifact_texts() -> tuple[list[str], list[str]]:
    folder = shared_path("eval", "scifact")
    corpus = [json.loads(line) for line in (folder / "corpus.jsonl").read_text().splitlines()[:48]]
    queries = [json.loads(line)["text"] for line in (folder / "queries.jsonl").read_text().splitlines()[:24]]
    return [f"{d['title']} {d['text']}" for d in corpus], queries


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("onnx")


@pytest.fixture(scope="module")
def paths(export_dir):
    from sentence_transformers import SentenceTransformer

    from rag.embed_paths import onnx_path, onnx_supported, torch_path

    model = SentenceTransformer(Settings(_env_file=None).resolved_model_path, device="cpu", local_files_only=True)
    assert onnx_supported(model)
    folder = export_dir
    return {
        "float32": torch_path(model, "float32", 16),
        "bfloat16": torch_path(model, "bfloat16", 64),
        "onnx-float32": onnx_path(model, "onnx-float32", 64, 0, folder),
        "onnx-int8": onnx_path(model, "onnx-int8", 64, 0, folder),
    }


def test_every_path_is_within_cosine_099_of_fp32_on_real_texts(paths, scifact_texts):
    texts, _ = scifact_texts
    reference = paths["float32"](texts)
    for name, embed in paths.items():
        vectors = embed(texts)
        assert vectors.shape == reference.shape and vectors.dtype == np.float32
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
        assert float(np.min(np.sum(vectors * reference, axis=1))) >= 0.99, name


def test_the_export_is_fused_and_int8_keeps_the_sensitive_products_in_float(paths, export_dir):
    """Attention is one fused node (faster, and quantisable as a whole); int8 quantises it and the
    linear layers, but not the feed-forward output projection (GELU's long tail: 0.988 with it)."""
    import onnx

    def ops(name: str) -> list[tuple[str, str]]:
        return [(n.op_type, n.name) for n in onnx.load(str(export_dir / name)).graph.node]

    fp32, int8 = ops("model.onnx"), ops("model.int8.onnx")
    assert [t for t, _ in fp32].count("Attention") == 6  # one per layer of MiniLM-L6
    assert [t for t, _ in int8].count("QAttention") == 6 and not any(t == "Attention" for t, _ in int8)
    ffn_out = [(t, n) for t, n in int8 if "/output/dense/" in n and "/attention/" not in n and "MatMul" in t]
    assert len(ffn_out) == 6 and all(t == "MatMul" for t, _ in ffn_out), ffn_out
    assert any(t == "MatMulInteger" for t, _ in int8)


def test_fp32_paths_agree_with_the_bf16_bulk_path_on_real_queries(paths, scifact_texts):
    """The query path chosen beside a bf16 bulk path (onnx-float32 or float32) stays within 0.999."""
    _, queries = scifact_texts
    bulk = paths["bfloat16"](queries)
    for name in ("float32", "onnx-float32"):
        single = np.array([paths[name]([q])[0] for q in queries])
        assert float(np.min(np.sum(single * bulk, axis=1))) >= QUERY_MIN_COSINE, name


def test_the_embedder_reports_its_paths_and_its_query_vectors_match_indexed_ones(tmp_path, scifact_texts):
    from rag.embedder import SentenceTransformerEmbedder

    texts, queries = scifact_texts
    path = Settings(_env_file=None).resolved_model_path
    embedder = SentenceTransformerEmbedder(path, dtype="bfloat16", query_dtype="onnx", cache_dir=tmp_path)
    assert (embedder.path, embedder.query_path, embedder.dtype) == ("bfloat16", "onnx-float32", "bfloat16")
    indexed = embedder.embed(queries)
    single = np.array([embedder.embed_query(q) for q in queries])
    assert float(np.min(np.sum(single * indexed, axis=1))) >= QUERY_MIN_COSINE
    fp32 = SentenceTransformerEmbedder(path, dtype="float32", query_dtype="float32")
    assert (fp32.path, fp32.query_path) == ("float32", "float32")
    assert float(np.min(np.sum(fp32.embed(texts[:8]) * embedder.embed(texts[:8]), axis=1))) >= 0.99


def test_auto_calibrates_once_then_reads_the_cache(tmp_path):
    from rag.embedder import SentenceTransformerEmbedder

    path = Settings(_env_file=None).resolved_model_path
    first = SentenceTransformerEmbedder(path, cache_dir=tmp_path)
    assert not first.calibrated_from_cache
    assert first.path in first.calibration and first.query_path in first.calibration
    assert first.calibration[first.path]["min_cosine"] >= BULK_MIN_COSINE
    second = SentenceTransformerEmbedder(path, cache_dir=tmp_path)
    assert second.calibrated_from_cache and (second.path, second.query_path) == (first.path, first.query_path)


def test_a_foreign_export_in_the_cache_is_rebuilt_not_used(tmp_path, perturbed_model):
    """An export left by another model (or another version) under the folder's name must not embed:
    the path checks itself against the loaded model on a padded batch and exports again."""
    import shutil

    from sentence_transformers import SentenceTransformer

    from rag.embed_paths import onnx_path, torch_path

    base = SentenceTransformer(Settings(_env_file=None).resolved_model_path, device="cpu", local_files_only=True)
    other = SentenceTransformer(str(perturbed_model), device="cpu", local_files_only=True)
    onnx_path(other, "onnx-float32", 64, 0, tmp_path / "other")
    shutil.copytree(tmp_path / "other", tmp_path / "base")  # the wrong model's file under base's folder
    embed = onnx_path(base, "onnx-float32", 64, 0, tmp_path / "base")
    texts = ["Short.", "A much longer sentence about the vacation policy of the company and its rules."]
    assert float(np.min(np.sum(embed(texts) * torch_path(base, "float32", 16)(texts), axis=1))) >= 0.999


def test_an_inherited_openmp_thread_limit_does_not_corrupt_bf16_rows():
    """unstructured sets OMP_THREAD_LIMIT=1 when its OCR module loads, and processes started afterwards
    inherit it. torch at 2 threads under that limit returned wrong rows for padded bf16 batches
    (minimum cosine 0.06 to fp32); the embedder caps its threads at the limit."""
    import os
    import subprocess
    import sys

    script = (
        "import sys, numpy as np\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})\n"
        "from rag.embedder import SentenceTransformerEmbedder\n"
        "from rag.settings import Settings\n"
        "path = Settings(_env_file=None).resolved_model_path\n"
        "texts = ['Short.', 'A long sentence about the vacation policy, the carry-over rule and the manager ' * 6,"
        " 'Mid-length text about payroll dates.'] * 8\n"
        "bf16 = SentenceTransformerEmbedder(path, dtype='bfloat16', query_dtype='bfloat16').embed(texts)\n"
        "fp32 = SentenceTransformerEmbedder(path, dtype='float32', query_dtype='float32').embed(texts)\n"
        "print(float(np.min(np.sum(bf16 * fp32, axis=1))))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env["OMP_THREAD_LIMIT"] = "1"
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert float(out.stdout.strip().splitlines()[-1]) >= 0.99
