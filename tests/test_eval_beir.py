"""`rag eval beir` on SciFact through the real ingestion path: the hybrid must reach nDCG@10 >= 0.72."""

import json
import os
import subprocess
import sys

import pytest

from .shared_data import shared_path


def _env(tmp_path) -> dict[str, str]:
    """The evaluation keeps its own SQLite database under the data folder, whatever the main one is."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    return {**env, "RAG_DATA_DIR": str(tmp_path / "data")}


@pytest.mark.slow
def test_hybrid_beats_both_retrievers_and_the_goal_on_scifact_test(tmp_path):
    scifact = shared_path("eval", "scifact", "corpus.jsonl").parent
    env = _env(tmp_path)
    scores = {}
    for retriever in ("hybrid", "dense", "bm25"):
        out = subprocess.run(
            [sys.executable, "-m", "cli", "eval", "beir", str(scifact), "--retriever", retriever, "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
            check=True,
        )
        scores[retriever] = json.loads(out.stdout)
        assert set(scores[retriever]) == {
            "ndcg@10",
            "recall@100",
            "mrr@10",
            "queries",
            "retriever",
            "documents",
            "chunks",
            "chunks_embedded",
            "ingest_s",
        }
        assert scores[retriever]["documents"] == 5183 and 9_500 <= scores[retriever]["chunks"] <= 11_000
        assert scores[retriever]["queries"] == 300 and scores[retriever]["retriever"] == retriever
    assert scores["hybrid"]["ndcg@10"] >= 0.72, scores
    assert scores["hybrid"]["ndcg@10"] > max(scores["dense"]["ndcg@10"], scores["bm25"]["ndcg@10"]) + 0.03
    assert scores["hybrid"]["recall@100"] >= 0.93


def test_eval_refuses_a_folder_that_is_not_beir(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "cli", "eval", "beir", str(tmp_path)], env=_env(tmp_path), capture_output=True, text=True
    )
    assert out.returncode == 2 and out.stderr.startswith("error: not a BEIR folder")


def test_identical_ids_are_dropped_only_when_asked(tmp_path):
    from rag.evaluation import BeirSet, evaluate

    beir = BeirSet(tmp_path / "corpus.jsonl", {"q1": "a query"}, {"q1": {"d2": 1}})
    doc_of_chunk = {1: "q1", 2: "d2"}  # the query's own document ranks first, as in ArguAna

    def rank(query):
        return [1, 2]

    kept = evaluate(beir, rank, doc_of_chunk)
    dropped = evaluate(beir, rank, doc_of_chunk, ignore_identical_ids=True)
    assert kept["mrr@10"] == 0.5 and dropped["mrr@10"] == 1.0
