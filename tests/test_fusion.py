"""Score fusions: z-score standardisation and the adaptive per-query weight (issue 18)."""

from rag.retrieval import FusionParams, adaptive_alpha, fuse, fuse_zscore


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
