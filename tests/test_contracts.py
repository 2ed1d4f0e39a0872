"""Contracts of the seams in rag/protocols.py: every implementation passes the same tests.

Indexes: the exact and the IVF FAISS index and the BM25 keyword index are driven through one
adapter each (build from texts, query with text, remove, reload), so the rules that retrieval and
access control rely on are checked once for all of them: ids are what was added, a filter applies
before ranking (never a post-filtered remainder), removed chunks never come back, scores come best
first, nothing survives a reload differently.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from indexes.keyword import BM25KeywordIndex
from indexes.vector import FaissVectorIndex
from rag import protocols
from tests.fakes import FakeEmbedder

TOPICS = ["vacation", "expenses", "laptop", "badge", "parking", "payroll", "travel", "onboarding"]
# 96 documents: every topic word in 12 of them, each document with a unique code word as well
CORPUS = {
    1000 + n: f"{TOPICS[n % 8]} policy note {n} about the {TOPICS[(n * 3 + 1) % 8]} rules code{n}x" for n in range(96)
}
EMBEDDER = FakeEmbedder()


@dataclass
class Adapter:
    """How the contract drives one implementation."""

    name: str
    build: Callable[[list[int], list[str]], object]
    query: Callable[[object, str, int, np.ndarray | None], tuple[list[int], list[float]]]
    remove: Callable[[object, np.ndarray], object]
    reload: Callable[[object, object], object]
    protocol: type


def _vector_query(index, text, k, allowed):
    scores, ids = index.search(EMBEDDER.embed([text]), k, allowed)
    keep = ids[0] >= 0
    return ids[0][keep].tolist(), scores[0][keep].tolist()


def _vector_remove(index, ids):
    index.remove(ids)
    return index


def _vector_reload(index, folder):
    index.save(folder)
    return FaissVectorIndex.load(folder)


def _exact(ids, texts):
    index = FaissVectorIndex(EMBEDDER.dim)
    index.add(np.asarray(ids, dtype=np.int64), EMBEDDER.embed(texts))
    return index


def _ivf(ids, texts):
    return FaissVectorIndex.build_ivf(
        EMBEDDER.dim, np.asarray(ids, dtype=np.int64), EMBEDDER.embed(texts), nlist=2, nprobe=2
    )


def _keyword_query(index, text, k, allowed):
    scores, ids = index.search(text, k, allowed)
    return ids.tolist(), scores.tolist()


def _keyword_reload(index, folder):
    index.save(folder)
    return BM25KeywordIndex.load(folder)


ADAPTERS = [
    Adapter("faiss-exact", _exact, _vector_query, _vector_remove, _vector_reload, protocols.VectorIndex),
    Adapter("faiss-ivf", _ivf, _vector_query, _vector_remove, _vector_reload, protocols.VectorIndex),
    Adapter(
        "bm25-segments",
        lambda ids, texts: BM25KeywordIndex.build(ids, texts),
        _keyword_query,
        lambda index, ids: index.updated(np.zeros(0, np.int64), [], ids),
        _keyword_reload,
        protocols.KeywordIndex,
    ),
]


@pytest.fixture(params=ADAPTERS, ids=lambda a: a.name)
def impl(request):
    adapter: Adapter = request.param
    return adapter, adapter.build(list(CORPUS), list(CORPUS.values()))


def test_is_the_protocol_and_holds_what_was_added(impl):
    adapter, index = impl
    assert isinstance(index, adapter.protocol)
    assert len(index) == len(CORPUS)
    assert index.ids().tolist() == sorted(CORPUS)


def test_a_distinctive_word_finds_its_document_first_with_scores_best_first(impl):
    adapter, index = impl
    ids, scores = adapter.query(index, "code17x", 5, None)
    assert ids[0] == 1017
    assert scores == sorted(scores, reverse=True)
    assert len(ids) == len(set(ids))


def test_the_filter_applies_before_ranking(impl):
    adapter, index = impl
    # the best match (1017, the only one with code17x) is filtered out: an allowed document that
    # shares the word "vacation" must still come back at k=1
    allowed = np.array([1024, 1050], dtype=np.int64)
    ids, _ = adapter.query(index, "code17x vacation", 1, allowed)
    assert ids == [1024]
    ids, _ = adapter.query(index, "policy note", 50, allowed)
    assert set(ids) <= set(allowed.tolist()) and ids


def test_an_empty_filter_returns_nothing_and_ids_outside_the_index_are_ignored(impl):
    adapter, index = impl
    assert adapter.query(index, "vacation", 10, np.zeros(0, dtype=np.int64))[0] == []
    ids, _ = adapter.query(index, "vacation policy", 10, np.array([1, 2, 1003, 99_999], dtype=np.int64))
    assert ids == [1003]


def test_k_beyond_the_size_returns_each_hit_once(impl):
    adapter, index = impl
    ids, _ = adapter.query(index, "policy note about the rules", 10 * len(CORPUS), None)
    assert len(ids) == len(set(ids)) and set(ids) <= set(CORPUS)


def test_removed_chunks_never_come_back_even_after_a_reload(impl, tmp_path):
    adapter, index = impl
    gone = np.array([1017, 1018], dtype=np.int64)
    index = adapter.remove(index, gone)
    assert not set(gone.tolist()) & set(index.ids().tolist())
    for query in ("code17x", "code18x", "policy note"):
        assert not set(gone.tolist()) & set(adapter.query(index, query, 200, None)[0])
    again = adapter.reload(index, tmp_path)
    assert again.ids().tolist() == index.ids().tolist()
    for query in ("code17x", "payroll rules", "vacation policy note 40"):
        (ids_after, scores_after), (ids_before, scores_before) = (
            adapter.query(i, query, 10, None) for i in (again, index)
        )
        assert ids_after == ids_before and scores_after == pytest.approx(scores_before)


# --- the other seams: each implementation is an instance of its protocol -----------------------------


def test_embedders_are_unit_normalised_float32_rows_and_deterministic():
    vectors = EMBEDDER.embed(["alpha beta", "alpha beta", "gamma"])
    assert isinstance(EMBEDDER, protocols.Embedder)
    assert vectors.dtype == np.float32 and vectors.shape == (3, EMBEDDER.dim)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(vectors[0], vectors[1])
    assert EMBEDDER.embed([]).shape == (0, EMBEDDER.dim)


def test_generators_router_and_audit_log_implement_their_protocols(tmp_path):
    from rag.audit import HashChainAuditLog
    from rag.db.session import make_engine, make_sessionmaker, migrate
    from rag.generators.extractive import ExtractiveGenerator
    from rag.generators.openai_compat import OpenAICompatibleGenerator
    from rag.routing import build_router
    from rag.settings import EscalationSettings, Settings

    assert isinstance(ExtractiveGenerator(), protocols.Generator)
    assert isinstance(OpenAICompatibleGenerator("http://127.0.0.1:9/v1", "m"), protocols.Generator)
    engine = make_engine(
        Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}", _env_file=None)
    )
    migrate(engine)
    factory = make_sessionmaker(engine)
    router = build_router(EscalationSettings(), factory)
    assert isinstance(router, protocols.Router) and not router.enabled
    assert isinstance(HashChainAuditLog(factory, b"k" * 32), protocols.AuditLog)
    engine.dispose()
