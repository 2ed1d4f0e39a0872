"""FAISS and BM25 indexes: ids, removals, allowed-id filtering inside the search, persistence."""

import numpy as np

from indexes.keyword import BM25KeywordIndex
from indexes.vector import FaissVectorIndex


def _unit(rows):
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_vector_add_remove_filter_and_reload(tmp_path):
    index = FaissVectorIndex(3)
    index.add(np.array([10, 20, 30]), _unit([[1, 0, 0], [0.9, 0.1, 0], [0, 0, 1]]))
    _, ids = index.search(_unit([[1, 0, 0]]), 2)
    assert ids[0].tolist() == [10, 20]
    _, ids = index.search(_unit([[1, 0, 0]]), 2, allowed_ids=np.array([20, 30]))
    assert ids[0].tolist() == [20, 30]  # 10 is filtered before ranking, not after
    assert index.remove(np.array([20])) == 1
    assert sorted(index.ids().tolist()) == [10, 30]
    index.save(tmp_path)
    again = FaissVectorIndex.load(tmp_path)
    assert sorted(again.ids().tolist()) == [10, 30]


def test_keyword_search_with_mask_and_reload(tmp_path):
    index = BM25KeywordIndex.build([5, 6, 7], ["vacation days per year", "expense reports and receipts",
                                               "vacation requests need approval"])
    _, ids = index.search("vacation", 10)
    assert sorted(ids.tolist()) == [5, 7]
    _, ids = index.search("vacation", 10, allowed_ids=np.array([6, 7]))
    assert ids.tolist() == [7]
    _, ids = index.search("vacation", 10, allowed_ids=np.array([6]))
    assert ids.tolist() == []
    index.save(tmp_path)
    again = BM25KeywordIndex.load(tmp_path)
    assert again.ids().tolist() == [5, 6, 7]
    assert again.search("receipts", 3)[1].tolist() == [6]


def test_empty_keyword_index_round_trips(tmp_path):
    index = BM25KeywordIndex.build([], [])
    index.save(tmp_path)
    assert len(BM25KeywordIndex.load(tmp_path)) == 0


def test_keyword_mask_keeps_exactly_the_allowed_ids_sorted_or_not():
    import numpy as np

    from indexes.keyword import BM25KeywordIndex

    texts = [f"shared word and token{i}" for i in range(50)]
    for ids in (list(range(100, 150)), list(range(149, 99, -1))):
        index = BM25KeywordIndex.build(ids, texts)
        allowed = np.array([101, 120, 149, 5000, 7], dtype=np.int64)
        _, found = index.search("shared word", 50, allowed)
        assert sorted(found.tolist()) == [101, 120, 149]
        assert index.search("shared word", 50, np.array([1, 2], dtype=np.int64))[1].tolist() == []
