"""The embedder tuner: held-out split, a short real tune, kill-and-resume to identical weights, the time bound."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rag.settings import Settings
from rag.tuning.pairs import make_pair
from rag.tuning.split import is_held_out
from rag.tuning.trainer import TrainingChunk, TuneConfig, _plan, tune_embedder

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "examples" / "answerability" / "corpus.jsonl"
# tiny steps, so a real tune of the real model takes seconds
TINY = {"batch_size": 2, "max_examples": 16, "query_max_tokens": 16, "passage_max_tokens": 48, "held_out_fraction": 0.1}


def _chunks() -> list[TrainingChunk]:
    with open(CORPUS, encoding="utf-8") as f:
        docs = [json.loads(line) for line in f]
    return [TrainingChunk(d["_id"], n, f"{d['title']}\n\n{d['text']}") for n, d in enumerate(docs, 1)]


def _base() -> Path:
    return Path(Settings(_env_file=None).resolved_model_path)


def _weights(model_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(model_dir / "model.safetensors"))


def test_held_out_split_is_deterministic_and_near_its_fraction():
    keys = [f"doc-{i}" for i in range(4000)]
    first = [is_held_out(k) for k in keys]
    assert first == [is_held_out(k) for k in keys]
    assert 0.08 < sum(first) / len(keys) < 0.12
    assert sum(is_held_out(k, 0.3) for k in keys) > sum(first)
    assert not any(is_held_out(k, 0.0) for k in keys)
    with pytest.raises(ValueError):
        is_held_out("x", 1.0)


def test_held_out_documents_never_reach_training():
    chunks = [
        TrainingChunk(f"doc-{i}", i, f"Title number {i}\n\nMarker{i} is a sentence about topic {i}. " * 4)
        for i in range(200)
    ]
    held = {c.document_key for c in chunks if is_held_out(c.document_key, 0.2)}
    assert held
    config = TuneConfig(held_out_fraction=0.2, max_examples=1000)
    texts = " ".join(f"{e.query} {e.positive} {e.negative}" for epoch in _plan(chunks, config) for e in epoch)
    assert not any(f"Marker{k.split('-')[1]} " in texts for k in held)
    assert f"Marker{next(i for i in range(200) if f'doc-{i}' not in held)} " in texts


def test_pseudo_query_is_cut_out_of_its_passage():
    text = (
        "Vacation policy\n\nEvery employee gets 27 days a year. Days carry over until March. "
        "Ask your manager two weeks ahead for long absences."
    )
    pair = make_pair("k", 1, text, seed=15)
    assert pair is not None
    assert pair.query not in pair.positive
    assert make_pair("k", 1, text, seed=15) == pair  # the same pair on every run


def test_hard_wrapped_lower_case_text_is_cut_at_sentences_not_lines():
    text = (
        "effect of dosage on endotoxin-induced changes in the reticuloendothelial\nsystem of rabbits\n"
        "tissues were removed from rabbits 4\nand 24 hr. following an i.v. injection of endotoxin.  explants of\n"
        "tissues were grown in a plasma medium . the migration of cells\nwas observed during two weeks ."
    )
    pair = make_pair("k", 1, text, seed=15)
    assert pair is not None and "\n" not in pair.query
    assert pair.query.endswith(".") and not pair.query.startswith(("system", "and 24"))
    assert pair.query not in pair.positive


@pytest.fixture(scope="module")
def whole_run(tmp_path_factory):
    """One uninterrupted tiny tune, shared: the reference the interrupted runs must reach."""
    seen: list[tuple[int, int]] = []
    work = tmp_path_factory.mktemp("whole")
    result = tune_embedder(_base(), _chunks(), work, TuneConfig(**TINY), progress=lambda s, t: seen.append((s, t)))
    return result, seen


def test_short_real_tune_writes_a_loadable_model_with_the_base_window(whole_run):
    from rag.embedder import SentenceTransformerEmbedder
    from rag.tuning.heldout import heldout_eval

    result, seen = whole_run
    assert result.completed and result.steps == seen[-1][1] >= 4 and seen[0] == (0, result.steps)
    assert result.examples > 0 and 0 < result.settings["training_chunks"] < len(_chunks())
    base, tuned = _weights(_base()), _weights(result.model_dir)
    assert any(not base[k].equal(tuned[k]) for k in tuned if k in base)  # it trained
    for dtype in ("float32", "bfloat16"):  # the bf16 fast path loads it too
        embedder = SentenceTransformerEmbedder(str(result.model_dir), dtype=dtype)
        assert embedder.dim == 384 and embedder.max_tokens == 254 and embedder.dtype == dtype
        vectors = embedder.embed(["How many vacation days do I get?"])
        assert vectors.shape == (1, 384)
    scores = heldout_eval(result.model_dir, _chunks(), fraction=0.3)
    assert scores["queries"] > 0 and 0.0 <= scores["ndcg@10"] <= 1.0


_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    sys.path.insert(0, {repo!r})
    from tests.test_tuning import TINY, _base, _chunks
    from rag.tuning.trainer import TuneConfig, tune_embedder

    def progress(step, total):
        if sys.argv[2] == "kill" and step == 3:  # after the checkpoint at step 2, before the next one
            os.kill(os.getpid(), signal.SIGKILL)

    result = tune_embedder(_base(), _chunks(), Path(sys.argv[1]), TuneConfig(**TINY, checkpoint_every=2), progress)
    print(result.steps, result.completed)
    """
)


def _tune_in_a_new_process(work: Path, mode: str, **env_extra: str) -> subprocess.CompletedProcess:
    """A tune as `rag tune embedder` runs it: a process of its own (a test process carries other
    tests' state, such as thread counts, that a real run does not)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-c", _CHILD.format(repo=str(REPO)), str(work), mode],
        env=env,
        capture_output=True,
        timeout=600,
    )


def test_a_killed_tune_resumes_to_the_same_weights(tmp_path):
    whole = _tune_in_a_new_process(tmp_path / "whole", "whole")
    assert whole.returncode == 0, whole.stderr.decode()[-2000:]
    killed = _tune_in_a_new_process(tmp_path / "cut", "kill")
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    assert (tmp_path / "cut" / "checkpoint.pt").is_file() and not (tmp_path / "cut" / "model").exists()
    # the rerun starts with one thread: the tuner trains at its own fixed count whatever the process has
    resumed = _tune_in_a_new_process(tmp_path / "cut", "resume", OMP_NUM_THREADS="1")
    assert resumed.returncode == 0, resumed.stderr.decode()[-2000:]
    assert resumed.stdout.split() == whole.stdout.split() and resumed.stdout.split()[1] == b"True"
    a, b = _weights(tmp_path / "whole" / "model"), _weights(tmp_path / "cut" / "model")
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)


def test_max_minutes_bounds_the_run(tmp_path):
    import time

    config = TuneConfig(**{**TINY, "max_examples": 10_000, "epochs": 50}, max_minutes=0.2)
    started = time.monotonic()
    cut = tune_embedder(_base(), _chunks(), tmp_path, config)
    assert time.monotonic() - started < 12 + 20  # the budget, plus writing the model and the checkpoint
    assert not cut.completed and cut.wall_s <= 12 + 20
    assert (cut.model_dir / "modules.json").is_file() and (tmp_path / "checkpoint.pt").is_file()
