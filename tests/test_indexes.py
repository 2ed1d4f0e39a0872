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


def test_an_allowed_set_returns_exactly_the_best_allowed_chunks_single_or_batched():
    """The allowed-id bitmap: ids far above the largest allowed one, sparse ids, one query (searched on
    the calling thread) and a batch (FAISS's thread team) all give numpy's exact answer."""
    rng = np.random.default_rng(3)
    ids = np.sort(rng.choice(2_000_000, 3000, replace=False)).astype(np.int64)
    vectors = rng.standard_normal((3000, 16)).astype(np.float32)
    index = FaissVectorIndex(16)
    index.add(ids, vectors)
    allowed = np.sort(rng.choice(ids[:1500], 400, replace=False))  # every id above these is disallowed
    rows = np.searchsorted(ids, allowed)
    for queries in (vectors[:1] + 0.1, rng.standard_normal((64, 16)).astype(np.float32)):
        _, found = index.search(queries, 5, allowed_ids=allowed)
        truth = allowed[np.argsort(-(queries @ vectors[rows].T), axis=1)[:, :5]]
        assert np.array_equal(found, truth)
    _, none = index.search(vectors[:1], 5, allowed_ids=np.zeros(0, dtype=np.int64))
    assert (none == -1).all()
    # ids so sparse that a bitmap would be large: the hash-set selector, same answer; unsorted input too
    sparse = FaissVectorIndex(16)
    sparse.add(ids * 1_000_000_007, vectors)
    shuffled = rng.permutation(allowed)
    _, found = sparse.search(vectors[:1] + 0.1, 5, allowed_ids=shuffled * 1_000_000_007)
    truth = allowed[np.argsort(-((vectors[:1] + 0.1) @ vectors[rows].T), axis=1)[:, :5]]
    assert np.array_equal(found, truth * 1_000_000_007)
    _, found = index.search(vectors[:1] + 0.1, 5, allowed_ids=shuffled)
    assert np.array_equal(found, truth)


def test_keyword_search_with_mask_and_reload(tmp_path):
    index = BM25KeywordIndex.build(
        [5, 6, 7], ["vacation days per year", "expense reports and receipts", "vacation requests need approval"]
    )
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


def _clustered(n: int, dim: int = 64, centers: int = 200, seed: int = 0) -> np.ndarray:
    """Vectors around a few hundred centres, like embeddings of documents on related topics."""
    rng = np.random.default_rng(seed)
    middle = rng.standard_normal((centers, dim)).astype(np.float32)
    rows = middle[rng.integers(0, centers, n)] + 0.35 * rng.standard_normal((n, dim)).astype(np.float32)
    return _unit(rows)


def test_ivf_recall_removals_filters_and_mmap_reload(tmp_path):
    vectors = _clustered(20_000)
    ids = np.arange(20_000, dtype=np.int64) * 7 + 3
    exact = FaissVectorIndex(64)
    exact.add(ids, vectors)
    ivf = FaissVectorIndex.build_ivf(64, ids, vectors, nprobe=16)
    assert ivf.kind == "ivf" and ivf.nlist == 512 and len(ivf) == 20_000
    queries = _clustered(200, seed=1)
    _, truth = exact.search(queries, 10)
    scores, found = ivf.search(queries, 10)
    recall = np.mean([len(set(t) & set(f)) / 10 for t, f in zip(truth, found, strict=True)])
    assert recall >= 0.95, recall
    # scores of IVFFlat candidates are exact inner products
    assert np.allclose(scores[:, 0], np.sum(queries * vectors[(found[:, 0] - 3) // 7], axis=1), atol=1e-5)

    gone = ids[:5000]
    assert ivf.remove(gone) == 5000 and exact.remove(gone) == 5000
    assert np.array_equal(ivf.ids(), np.sort(ids[5000:]))
    _, found = ivf.search(queries, 10)
    assert not set(found.ravel()) & set(gone.tolist())

    small = ids[5000:5300]  # a narrow allowed set: searched exactly over its own vectors
    _, truth = exact.search(queries, 10, allowed_ids=small)
    _, found = ivf.search(queries, 10, allowed_ids=np.concatenate([small, gone[:10]]))  # removed ids ignored
    assert np.array_equal(truth, found)
    wide = ids[5000::2]  # a wide one: IVF with the selector inside, more cells visited
    _, truth = exact.search(queries, 10, allowed_ids=wide)
    _, found = ivf.search(queries, 10, allowed_ids=wide)
    assert set(found.ravel()) <= set(wide.tolist())
    assert np.mean([len(set(t) & set(f)) / 10 for t, f in zip(truth, found, strict=True)]) >= 0.95

    ivf.save(tmp_path)
    again = FaissVectorIndex.load(tmp_path, nprobe=16, mmap=True)
    assert again.kind == "ivf" and np.array_equal(again.search(queries, 10)[1], ivf.search(queries, 10)[1])


def test_publish_switches_to_ivf_above_the_threshold_and_back(settings, db, fake_embedder, tmp_path):
    from indexes.snapshot import load_snapshot
    from ingest.indexing import AnnPolicy, publish

    from .helpers import HANDBOOK, copy_tree, run_job

    engine, factory = db
    root = copy_tree(HANDBOOK, tmp_path / "handbook")
    run_job(settings, db, fake_embedder, root)
    exact = load_snapshot(settings.index_dir).vector
    n = len(exact)
    assert exact.kind == "exact" and n > 10
    result = publish(engine, factory, settings.index_dir, fake_embedder.dim, ann=AnnPolicy(threshold=n, nprobe=4))
    assert result.changed  # same chunks, new structure
    ivf = load_snapshot(settings.index_dir).vector
    assert ivf.kind == "ivf" and np.array_equal(ivf.ids(), exact.ids())
    query = fake_embedder.embed(["How many vacation days do employees get?"])
    ivf.nprobe = ivf.nlist  # visiting every cell is exact search
    assert np.array_equal(ivf.search(query, 5)[1], exact.search(query, 5)[1])
    assert not publish(engine, factory, settings.index_dir, fake_embedder.dim, ann=AnnPolicy(threshold=n)).changed
    back = publish(engine, factory, settings.index_dir, fake_embedder.dim, ann=AnnPolicy(threshold=2 * n + 2))
    assert back.changed and load_snapshot(settings.index_dir).vector.kind == "exact"


def test_publish_tokenises_only_what_changed_and_shares_the_rest(settings, db, fake_embedder, tmp_path):
    """A re-ingest that changes one file adds a small segment and tombstones; the big segment is
    shared with the previous generation (same file), and the ranking equals a fresh build."""
    import os

    from sqlalchemy import select

    from indexes.keyword import BM25KeywordIndex
    from indexes.snapshot import load_snapshot
    from ingest.indexing import check
    from rag.db.models import Chunk

    from .helpers import HANDBOOK, copy_tree, run_job

    engine, factory = db
    root = copy_tree(HANDBOOK, tmp_path / "handbook")
    run_job(settings, db, fake_embedder, root)
    before = load_snapshot(settings.index_dir)
    [first_segment] = before.keyword.segments
    changed = sorted(p for p in root.rglob("*.md"))[0]
    changed.write_text(changed.read_text() + "\n\nThe quarterly zephyrine audit is due every March.\n")
    run_job(settings, db, fake_embedder, root)
    after = load_snapshot(settings.index_dir)
    assert after.manifest.generation == before.manifest.generation + 1
    names = [s.name for s in after.keyword.segments]
    assert first_segment.name in names and len(names) == 2
    old_file = settings.index_dir / before.manifest.folder / "keyword" / first_segment.name / "rows.npy"
    new_file = settings.index_dir / after.manifest.folder / "keyword" / first_segment.name / "rows.npy"
    assert os.stat(old_file).st_ino == os.stat(new_file).st_ino
    shared = next(s for s in after.keyword.segments if s.name == first_segment.name)
    new = next(s for s in after.keyword.segments if s.name != first_segment.name)
    assert len(shared.deleted) > 0 and len(new.ids) == len(shared.deleted)  # the file's chunks, re-chunked
    assert check(factory, settings.index_dir) == []
    with factory() as session:
        rows = session.execute(select(Chunk.id, Chunk.text).order_by(Chunk.id)).all()
    fresh = BM25KeywordIndex.build([r[0] for r in rows], [r[1] for r in rows])
    for query in ("zephyrine audit", "vacation days", "expense receipts travel", "laptop security"):
        ours, theirs = after.keyword.search(query, 8), fresh.search(query, 8)
        assert ours[1].tolist() == theirs[1].tolist()
        assert np.allclose(ours[0], theirs[0], rtol=1e-5)
    found = after.keyword.search("zephyrine", 3)[1].tolist()
    assert found and set(found) <= set(new.ids.tolist())
