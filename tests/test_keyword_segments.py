"""The segmented BM25 index ranks exactly like bm25s built fresh over the live chunks.

Two corpora: generated text of our own (always), and real text, SciFact abstracts and claims
(../shared/eval/scifact). The oracle is the bm25s library itself, built from scratch over whatever
is live after the adds and removes under test.
"""

from __future__ import annotations

import json
import os

import bm25s
import numpy as np
import pytest

import indexes.keyword as keyword
from indexes.keyword import BM25KeywordIndex, tokenize
from tests.fixtures import keyword_corpus
from tests.shared_data import shared_path


@pytest.fixture(scope="module", params=["generated", "scifact"])
def corpus(request):
    """900 texts keyed 1000.. and 40 queries, plus three edge cases."""
    if request.param == "generated":
        texts, queries = keyword_corpus(900, 40)
    else:
        folder = shared_path("eval", "scifact")
        docs = [json.loads(line) for line in (folder / "corpus.jsonl").read_text().splitlines()[:900]]
        queries = [json.loads(line)["text"] for line in (folder / "queries.jsonl").read_text().splitlines()[:40]]
        texts = {1000 + n: f"{d['title']} {d['text']}" for n, d in enumerate(docs)}
    return texts, queries + ["cancer cancer cells", "the of and", "zzzunknownword"]


def _oracle(texts: dict[int, str], query: str) -> dict[int, float]:
    ids = sorted(texts)
    retriever = bm25s.BM25()
    retriever.index(tokenize([texts[i] for i in ids]), show_progress=False)
    tokens = tokenize([query])[0]
    if not tokens:
        return {}
    scores = retriever.get_scores(tokens)
    return {ids[row]: float(scores[row]) for row in np.flatnonzero(scores > 0)}


def _ours(index: BM25KeywordIndex, query: str, allowed=None) -> dict[int, float]:
    scores, ids = index.search(query, len(index) + 1, allowed)
    assert list(scores) == sorted(scores, reverse=True)
    return dict(zip(ids.tolist(), scores.tolist(), strict=True))


def _assert_same(ours: dict[int, float], oracle: dict[int, float]) -> None:
    assert ours.keys() == oracle.keys()
    for chunk_id, score in oracle.items():
        assert ours[chunk_id] == pytest.approx(score, rel=2e-5, abs=1e-6)


def _add(index: BM25KeywordIndex, texts: dict[int, str], ids) -> BM25KeywordIndex:
    ids = list(ids)
    return index.updated(np.array(ids), [texts[i] for i in ids], np.zeros(0, dtype=np.int64))


def test_segments_with_tombstones_rank_like_one_fresh_index(corpus, tmp_path):
    texts, queries = corpus
    all_ids = sorted(texts)
    index = BM25KeywordIndex()
    for start in range(0, 600, 200):  # three publishes, three segments
        index = _add(index, texts, all_ids[start : start + 200])
    removed = all_ids[10:40] + all_ids[350:360]
    index = index.updated(np.zeros(0, dtype=np.int64), [], np.array(removed))
    live = {i: texts[i] for i in all_ids[:600] if i not in removed}
    assert len(index.segments) == 3 and len(index) == len(live)
    assert index.ids().tolist() == sorted(live)
    index.save(tmp_path)
    loaded = BM25KeywordIndex.load(tmp_path)
    for query in queries:
        oracle = _oracle(live, query)
        _assert_same(_ours(index, query), oracle)
        _assert_same(_ours(loaded, query), oracle)
    assert _ours(loaded, "zzzunknownword") == {} and _ours(loaded, "the of and") == {}


def test_allowed_ids_filter_before_ranking(corpus):
    """Filtered, the index ranks like bm25s built over the allowed live chunks alone: the caller's
    scores depend on nothing they may not read (chunk count, average length, document frequencies)."""
    texts, queries = corpus
    ids = sorted(texts)[:300]
    index = _add(_add(BM25KeywordIndex(), texts, ids[:150]), texts, ids[150:])
    allowed = np.array(ids[::7][::-1] + [5, 999_999], dtype=np.int64)  # unsorted, with unknown ids
    shared = np.sort(allowed)
    shared.setflags(write=False)  # like the searcher's cached sets: row masks are built once and reused
    index = index.updated(np.zeros(0, dtype=np.int64), [], np.array(ids[::14]))  # tombstones stay out too
    readable = {i: texts[i] for i in ids[::7] if i not in set(ids[::14])}
    for query in queries[:10]:
        expected = _oracle(readable, query)
        for variant in (allowed, shared, shared):
            filtered = _ours(index, query, variant)
            _assert_same(filtered, expected)
            top3 = index.search(query, 3, variant)[1].tolist()
            assert top3 == list(filtered)[:3]  # the top of the allowed set, not the allowed part of a top
    assert not set(ids[::14]) & set(index.search(queries[0], 300, shared)[1].tolist())
    assert index.search(queries[0], 5, np.array([1, 2], dtype=np.int64))[1].tolist() == []


def test_merging_and_rewriting_keep_the_ranking(corpus, monkeypatch, tmp_path):
    monkeypatch.setattr(keyword, "MAX_SEGMENTS", 3)
    texts, queries = corpus
    all_ids = sorted(texts)
    index = BM25KeywordIndex()
    for start in range(0, 900, 100):
        index = _add(index, texts, all_ids[start : start + 100])
        assert len(index.segments) <= 3
    live = dict(texts)
    # most of one segment removed: it is rewritten without its tombstones
    victims = [i for i in index.segments[-1].ids.tolist()][:80]
    index = index.updated(np.zeros(0, dtype=np.int64), [], np.array(victims))
    for victim in victims:
        live.pop(victim)
    assert all(len(s.deleted) <= keyword.REWRITE_DELETED_SHARE * len(s.ids) for s in index.segments)
    assert sum(len(s.ids) for s in index.segments) == len(live) + sum(len(s.deleted) for s in index.segments)
    index.save(tmp_path)
    loaded = BM25KeywordIndex.load(tmp_path)
    for query in queries[:15]:
        _assert_same(_ours(loaded, query), _oracle(live, query))


def test_unchanged_segments_are_shared_between_generations(corpus, tmp_path):
    texts, _ = corpus
    all_ids = sorted(texts)
    (tmp_path / "g1").mkdir()
    (tmp_path / "g2").mkdir()
    first = _add(_add(BM25KeywordIndex(), texts, all_ids[:300]), texts, all_ids[300:400])
    first.save(tmp_path / "g1")
    loaded = BM25KeywordIndex.load(tmp_path / "g1")
    second = loaded.updated(np.array(all_ids[400:410]), [texts[i] for i in all_ids[400:410]], np.array(all_ids[:5]))
    second.save(tmp_path / "g2")
    old, new = tmp_path / "g1" / "keyword", tmp_path / "g2" / "keyword"
    shared = [p.name for p in old.iterdir() if p.is_dir() and (new / p.name).is_dir()]
    assert len(shared) == 2
    for name in shared:
        for array in (old / name).iterdir():
            assert os.stat(array).st_ino == os.stat(new / name / array.name).st_ino  # hard link, not a copy
    assert sorted(shared) == ["seg-000001", "seg-000002"]
    assert (new / "seg-000001.deleted.npy").exists()  # tombstones live beside the shared files
    assert BM25KeywordIndex.load(tmp_path / "g1").ids().tolist() == all_ids[:400]  # old generation intact
    assert BM25KeywordIndex.load(tmp_path / "g2").ids().tolist() == all_ids[5:410]


def test_empty_and_old_format(tmp_path):
    from rag.errors import IndexUnavailableError

    index = BM25KeywordIndex.build([], [])
    index.save(tmp_path)
    assert len(BM25KeywordIndex.load(tmp_path)) == 0
    assert BM25KeywordIndex.load(tmp_path).search("anything", 5)[1].tolist() == []
    (tmp_path / "keyword" / "meta.json").write_text(json.dumps({"count": 3, "stemmer": "english"}))
    with pytest.raises(IndexUnavailableError, match="reindex"):
        BM25KeywordIndex.load(tmp_path)
