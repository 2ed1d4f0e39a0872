"""Score fusions: z-score standardisation and the adaptive per-query weight (issue 18)."""

from rag.retrieval import FusionParams, adaptive_alpha, fuse, fuse_tmm, fuse_zscore

# what bench/tune_fusion.py chose on the tuning halves and the README reports (issue 18)
DEFAULT_METHOD, DEFAULT_ALPHA = "tmm", 0.65


def test_zscore_ranks_by_standardised_scores_and_floors_missing_candidates():
    dense = [(1, 0.9), (2, 0.5), (3, 0.4)]
    keyword = [(2, 12.0), (4, 3.0), (1, 2.0)]
    hits = fuse_zscore(dense, keyword, 0.5, 4)
    assert [h.chunk_id for h in hits] == [2, 1, 4, 3]
    # a candidate only one list found gets the other list's lowest z, not 0 (which would be its mean)
    only_dense = fuse_zscore([(1, 0.9), (2, 0.1)], [(3, 5.0), (4, 1.0)], 0.5, 4)
    scores = {h.chunk_id: h.score for h in only_dense}
    assert scores[1] == scores[3] and scores[2] == scores[4] < scores[1]


def test_adaptive_alpha_leans_to_the_retriever_whose_head_stands_out():
    flat = [(i, 10.0 - 0.01 * i) for i in range(50)]
    peaked = [(i, 1.0 if i == 0 else 0.2 - 0.001 * i) for i in range(50)]
    assert adaptive_alpha(peaked, flat) > 0.5 > adaptive_alpha(flat, peaked)
    assert 0.2 <= adaptive_alpha(peaked, flat) <= 0.8 and 0.2 <= adaptive_alpha(flat, peaked) <= 0.8
    assert adaptive_alpha([], []) == 0.5
    hits = fuse(peaked, flat, FusionParams(method="adaptive"), 3)
    assert hits[0].chunk_id == 0


def test_tmm_scales_from_the_theoretical_floor_so_a_flat_ranking_weighs_little():
    # dense cannot tell its candidates apart (cosines 0.61 .. 0.60); BM25 has one clear match (chunk 3)
    dense = [(1, 0.61), (2, 0.605), (3, 0.60)]
    keyword = [(3, 9.0), (2, 2.0), (1, 1.0)]
    # min-max stretches the flat dense ranking to 1 .. 0, so it outvotes BM25's clear match at alpha 0.6
    assert fuse(dense, keyword, FusionParams(method="convex", alpha=0.6), 3)[0].chunk_id == 1
    hits = fuse(dense, keyword, FusionParams(method="tmm", alpha=0.6), 3)
    assert hits[0].chunk_id == 3
    scores = {h.chunk_id: h.score for h in hits}
    assert abs(scores[3] - (0.6 * 0.60 / 0.61 + 0.4 * 1.0)) < 1e-9  # dense 0.60 over [0, 0.61], BM25 9 over [0, 9]


def test_tmm_follows_a_dense_ranking_that_does_separate_its_candidates():
    dense = [(1, 0.80), (2, 0.20), (3, 0.10)]
    keyword = [(2, 4.0), (1, 3.6), (3, 3.5)]  # BM25 nearly flat: every candidate shares a common term
    assert fuse(dense, keyword, FusionParams(method="tmm", alpha=0.6), 3)[0].chunk_id == 1


def test_tmm_edges():
    assert fuse_tmm([], [], 0.5, 10) == []
    # a candidate one list misses gets 0 from it; negative cosines are floored at 0, not negative
    hits = fuse_tmm([(1, 0.5), (2, -0.2)], [(3, 2.0)], 0.5, 10)
    scores = {h.chunk_id: h.score for h in hits}
    assert scores == {1: 0.5, 2: 0.0, 3: 0.5}
    # all-zero BM25 scores (no query term anywhere) contribute nothing rather than dividing by zero
    assert [h.chunk_id for h in fuse_tmm([(1, 0.3), (2, 0.2)], [(2, 0.0)], 0.5, 10)] == [1, 2]
    assert [h.chunk_id for h in fuse_tmm([(5, 0.3)], [(4, 1.0)], 0.5, 1)] == [4]  # ties broken by id


def test_rag_eval_beir_fuses_with_the_shipped_default(tmp_path, monkeypatch):
    """The table in the README is `rag eval beir`'s: the command must fuse with the settings' default
    (the value bench/tune_fusion.py chose), not a setting of its own."""
    import json

    from click.testing import CliRunner

    import cli.runtime
    import rag.retrieval
    from cli.main import main
    from rag.service import fusion_params
    from rag.settings import Settings
    from tests.fakes import FakeEmbedder

    folder = tmp_path / "beir"
    (folder / "qrels").mkdir(parents=True)
    docs = {"d1": "Vitamin D deficiency and bone density.", "d2": "Sea ice extent in the Arctic.", "d3": "Bone loss."}
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": i, "title": "", "text": t}) + "\n" for i, t in docs.items())
    )
    (folder / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "vitamin D and bone"}) + "\n")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(cli.runtime.Runtime, "embedder", property(lambda self: FakeEmbedder()))
    used = []
    real_fuse = rag.retrieval.fuse

    def recording_fuse(dense, keyword, params, top_k):
        used.append(params)
        return real_fuse(dense, keyword, params, top_k)

    monkeypatch.setattr(rag.retrieval, "fuse", recording_fuse)
    out = CliRunner().invoke(main, ["eval", "beir", str(folder), "--json"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert json.loads(out.output.splitlines()[-1])["queries"] == 1
    default = fusion_params(Settings(_env_file=None))
    assert used == [default]
    assert (default.method, default.alpha) == (DEFAULT_METHOD, DEFAULT_ALPHA)
