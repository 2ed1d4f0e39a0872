"""BM25 keyword index keyed by chunk id, in immutable memory-mapped segments with tombstones.

Why segments: rebuilding one BM25 index per publish costs time linear in the corpus (at a million
chunks, minutes of tokenising for a one-file change). Here a publish tokenises only the added chunks
into a new segment, records removals as tombstones, and carries unchanged segments over as hard
links; small segments are merged (from their postings, no re-tokenising) and segments that are
mostly tombstones are rewritten. Scores use corpus-wide statistics (live documents, average length,
live document frequency per term), so any segmentation ranks exactly like one index built over the
live chunks: BM25 as bm25s computes it ("lucene": k1 1.5, b 0.75, idf log(1 + (N-df+.5)/(df+.5))).

Terms are stored as sorted 64-bit hashes (no vocabulary to load), postings as rows + term frequency;
readers map every array read-only, so only the postings of the queried terms are paged in.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import bm25s
import numpy as np
import Stemmer

from indexes.shared_sets import PerAllowedSet
from rag.errors import IndexUnavailableError

_STEMMER = Stemmer.Stemmer("english")
logging.getLogger("bm25s").setLevel(logging.WARNING)

K1, B = 1.5, 0.75
FORMAT = 2
MAX_SEGMENTS = 8  # more than this after a publish: the smallest are merged into one
REWRITE_DELETED_SHARE = 0.3  # a segment with more tombstones than this is rewritten without them
_MASK_CACHE = 16  # allowed sets whose row masks are kept (1 byte per chunk each)
_ARRAYS = ("ids", "lengths", "terms", "indptr", "rows", "tf")


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    return bm25s.tokenize(list(texts), stopwords="en", stemmer=_STEMMER, return_ids=False, show_progress=False)


def _hash_terms(terms: Iterable[str]) -> np.ndarray:
    return np.fromiter(
        (int.from_bytes(hashlib.blake2b(t.encode(), digest_size=8).digest(), "little") for t in terms), dtype=np.uint64
    )


@dataclass(eq=False)  # compared by identity: the fields are arrays
class Segment:
    """Immutable once written. Rows are sorted by chunk id; `terms` sorted; postings per term in CSR."""

    name: str
    ids: np.ndarray  # int64 [rows]
    lengths: np.ndarray  # int32 [rows], tokens after stopwords
    terms: np.ndarray  # uint64 [terms], sorted hashes
    indptr: np.ndarray  # int64 [terms + 1]
    rows: np.ndarray  # int32 [postings]
    tf: np.ndarray  # uint16 [postings]
    deleted: np.ndarray  # int64, sorted rows removed since the segment was written

    def __post_init__(self) -> None:
        self.alive = None
        if len(self.deleted):
            self.alive = np.ones(len(self.ids), dtype=bool)
            self.alive[self.deleted] = False
        self._norm: tuple[float, np.ndarray] | None = None
        self._lengths_f32: np.ndarray | None = None

    def length_norm(self, avg_len: float) -> np.ndarray:
        """k1 (1 - b + b len/avg) per row, float32: computed once per generation, not per posting."""
        if self._norm is None or self._norm[0] != avg_len:
            lengths = np.asarray(self.lengths, dtype=np.float32)
            self._norm = (avg_len, K1 * ((1 - B) + B * lengths / np.float32(avg_len)))
        return self._norm[1]

    def norm_of(self, rows: np.ndarray, avg_len: float) -> np.ndarray:
        """The same norm for some rows only, under another average length (a caller's own)."""
        if self._lengths_f32 is None:
            self._lengths_f32 = np.asarray(self.lengths, dtype=np.float32)
        return np.float32(K1 * (1 - B)) + np.float32(K1 * B / avg_len) * self._lengths_f32[rows]

    @property
    def live(self) -> int:
        return len(self.ids) - len(self.deleted)

    @property
    def live_length(self) -> int:
        total = int(self.lengths.sum(dtype=np.int64))
        return total - int(self.lengths[self.deleted].sum(dtype=np.int64)) if len(self.deleted) else total

    def rows_of(self, ids: np.ndarray) -> np.ndarray:
        """Live rows holding the given chunk ids (sorted ids in, sorted rows out; others ignored)."""
        pos, found = _find(self.ids, ids)
        pos = pos[found]
        return pos if self.alive is None else pos[self.alive[pos]]

    def allowed_rows(self, sorted_allowed: np.ndarray) -> np.ndarray:
        """Boolean mask over this segment's rows: which hold allowed (and live) ids."""
        mask = np.zeros(len(self.ids), dtype=bool)
        mask[self.rows_of(sorted_allowed)] = True
        return mask

    def live_ids(self) -> np.ndarray:
        return self.ids if self.alive is None else self.ids[self.alive]

    def postings(self, term_hash: np.uint64, *, drop_deleted: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(rows, tf) of one term, tombstoned rows dropped unless the caller's own mask drops them."""
        at = int(np.searchsorted(self.terms, term_hash))
        if at >= len(self.terms) or self.terms[at] != term_hash:
            return _EMPTY_ROWS, _EMPTY_TF
        rows, tf = self.rows[self.indptr[at] : self.indptr[at + 1]], self.tf[self.indptr[at] : self.indptr[at + 1]]
        if drop_deleted and self.alive is not None:
            keep = self.alive[rows]
            rows, tf = rows[keep], tf[keep]
        return rows, tf

    def with_deleted(self, rows: np.ndarray) -> Segment:
        merged = np.union1d(self.deleted, rows).astype(np.int64)
        return Segment(self.name, self.ids, self.lengths, self.terms, self.indptr, self.rows, self.tf, merged)

    # -- building -------------------------------------------------------------------------------

    @classmethod
    def from_tokens(cls, name: str, ids: np.ndarray, tokens: list[list[str]]) -> Segment:
        order = np.argsort(ids, kind="stable")
        vocab: dict[str, int] = {}
        term_ids: list[int] = []
        counts: list[int] = []
        per_row = np.zeros(len(ids), dtype=np.int64)
        lengths = np.zeros(len(ids), dtype=np.int32)
        for row, source in enumerate(order.tolist()):
            doc = tokens[source]
            lengths[row] = len(doc)
            counted = Counter(doc)
            per_row[row] = len(counted)
            for term, n in counted.items():
                term_ids.append(vocab.setdefault(term, len(vocab)))
                counts.append(n)
        rows = np.repeat(np.arange(len(ids), dtype=np.int32), per_row)
        hashes = _hash_terms(vocab)[np.asarray(term_ids, dtype=np.int64)] if term_ids else np.zeros(0, np.uint64)
        tf = np.minimum(np.asarray(counts, dtype=np.int64), 65535).astype(np.uint16)
        return cls._from_postings(name, np.asarray(ids, dtype=np.int64)[order], lengths, hashes, rows, tf)

    @classmethod
    def _from_postings(
        cls, name: str, ids: np.ndarray, lengths: np.ndarray, hashes: np.ndarray, rows: np.ndarray, tf: np.ndarray
    ) -> Segment:
        order = np.lexsort((rows, hashes))  # by term, then row
        hashes, rows, tf = hashes[order], rows[order], tf[order]
        terms, starts = np.unique(hashes, return_index=True)
        indptr = np.append(starts, len(hashes)).astype(np.int64)
        return cls(name, ids, lengths, terms, indptr, rows.astype(np.int32), tf, np.zeros(0, dtype=np.int64))

    @classmethod
    def merged(cls, name: str, parts: Sequence[Segment]) -> Segment:
        """One segment holding the live rows of `parts`, built from their postings."""
        ids = np.concatenate([p.live_ids() for p in parts])
        order = np.argsort(ids, kind="stable")
        new_row = np.empty(len(ids), dtype=np.int64)
        new_row[order] = np.arange(len(ids))
        lengths, hashes, rows, tfs = [], [], [], []
        offset = 0
        for part in parts:
            renumber = np.full(len(part.ids), -1, dtype=np.int64)
            live_rows = np.arange(len(part.ids)) if part.alive is None else np.flatnonzero(part.alive)
            renumber[live_rows] = new_row[offset : offset + len(live_rows)]
            offset += len(live_rows)
            lengths.append(part.lengths[live_rows])
            term_of = np.repeat(part.terms, np.diff(part.indptr))
            mapped = renumber[part.rows]
            keep = mapped >= 0
            hashes.append(term_of[keep])
            rows.append(mapped[keep])
            tfs.append(np.asarray(part.tf)[keep])
        ordered_lengths = np.empty(len(ids), dtype=np.int32)
        ordered_lengths[new_row] = np.concatenate(lengths) if lengths else np.zeros(0, np.int32)
        return cls._from_postings(
            name, ids[order], ordered_lengths, np.concatenate(hashes), np.concatenate(rows), np.concatenate(tfs)
        )

    # -- files ----------------------------------------------------------------------------------

    def save(self, folder: Path) -> None:
        target = folder / self.name
        target.mkdir()
        for array in _ARRAYS:
            np.save(target / f"{array}.npy", getattr(self, array))

    @classmethod
    def load(cls, folder: Path, name: str, deleted: np.ndarray, *, mmap: bool) -> Segment:
        mode = "r" if mmap else None
        # plain ndarray views of the mapping: np.memmap's per-slice bookkeeping costs ~1 ms a query
        arrays = {a: np.load(folder / name / f"{a}.npy", mmap_mode=mode).view(np.ndarray) for a in _ARRAYS}
        return cls(name, deleted=deleted, **arrays)


def _link_or_copy(source: Path, target: Path) -> None:
    """Segment files never change once written, so generations can share them."""
    try:
        os.link(source, target)
    except OSError:  # a file system without hard links
        shutil.copyfile(source, target)


def _find(sorted_values: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position of each value in `sorted_values`, whether it is there)."""
    if not len(sorted_values):
        return np.zeros(len(values), dtype=np.int64), np.zeros(len(values), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_values, values), len(sorted_values) - 1)
    return pos, sorted_values[pos] == values


_EMPTY_ROWS = np.zeros(0, dtype=np.int32)
_EMPTY_TF = np.zeros(0, dtype=np.uint16)
_NO_HITS = (np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64))


def _kept(rows: np.ndarray, tf: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = mask[rows]
    return rows[keep], tf[keep]


class BM25KeywordIndex:
    """The keyword side of a generation: a list of segments, each with its tombstones."""

    FOLDER = "keyword"

    def __init__(self, segments: Sequence[Segment] = (), *, next_segment: int = 1) -> None:
        self._segments = list(segments)  # `updated` drops segments with no live rows
        self._next = next_segment
        self._docs = sum(s.live for s in self._segments)
        self._avg_len = (sum(s.live_length for s in self._segments) / self._docs) if self._docs else 0.0
        self._masks: PerAllowedSet[tuple[list[np.ndarray], int, int]] = PerAllowedSet(_MASK_CACHE)
        self.linkable: set[str] = set()  # segments whose files already exist in the source generation
        self._source: Path | None = None

    @classmethod
    def build(cls, ids: Sequence[int], texts: Sequence[str]) -> BM25KeywordIndex:
        return cls().updated(np.asarray(ids, dtype=np.int64), texts, np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return self._docs

    @property
    def segments(self) -> list[Segment]:
        return list(self._segments)

    def ids(self) -> np.ndarray:
        if not self._segments:
            return np.zeros(0, dtype=np.int64)
        return np.sort(np.concatenate([s.live_ids() for s in self._segments]))

    def updated(
        self, add_ids: np.ndarray, add_texts: Sequence[str], remove_ids: np.ndarray, *, batch: int = 250_000
    ) -> BM25KeywordIndex:
        """A new index: `remove_ids` tombstoned, `add_texts` tokenised into new segments, then merged
        down to MAX_SEGMENTS. `self` is unchanged (readers may be using it)."""
        remove_ids = np.sort(np.asarray(remove_ids, dtype=np.int64))
        segments = []
        for segment in self._segments:
            rows = segment.rows_of(remove_ids) if len(remove_ids) else _EMPTY_ROWS
            segments.append(segment.with_deleted(rows) if len(rows) else segment)
        number = self._next
        add_ids = np.asarray(add_ids, dtype=np.int64)
        for start in range(0, len(add_ids), batch):
            chunk = add_ids[start : start + batch]
            segments.append(Segment.from_tokens(f"seg-{number:06d}", chunk, tokenize(add_texts[start : start + batch])))
            number += 1
        segments = [s for s in segments if s.live]
        rewrite = [s for s in segments if len(s.deleted) > REWRITE_DELETED_SHARE * len(s.ids)]
        others = sorted((s for s in segments if s not in rewrite), key=lambda s: s.live)
        # merging m segments into one removes m - 1: enough to get back to MAX_SEGMENTS
        needed = len(segments) - MAX_SEGMENTS + 1 if len(segments) > MAX_SEGMENTS else 0
        merge = rewrite + others[: max(0, needed - len(rewrite))]
        if merge:
            segments = [s for s in segments if s not in merge] + [Segment.merged(f"seg-{number:06d}", merge)]
            number += 1
        out = BM25KeywordIndex(sorted(segments, key=lambda s: s.name), next_segment=number)
        out._source = self._source
        out.linkable = {s.name for s in out._segments if s.name in self.linkable}
        return out

    # -- searching ------------------------------------------------------------------------------

    def search(self, query: str, k: int, allowed_ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids); the allowed-id mask is applied before ranking.

        With `allowed_ids`, the BM25 statistics (chunk count, average length, document frequencies)
        are those of the allowed chunks only: a score must not depend on text the caller may not
        read, or its changes would tell whether a word occurs in documents they cannot see."""
        if not self._docs:
            return _NO_HITS
        tokens = tokenize([query])
        if not tokens or not tokens[0]:
            return _NO_HITS
        hashes = _hash_terms(tokens[0])
        unique, counts = np.unique(hashes, return_counts=True)  # a repeated query word counts again
        if allowed_ids is None:
            docs, avg_len = self._docs, self._avg_len
            postings = [[s.postings(h) for h in unique] for s in self._segments]
        else:
            masks, docs, total_len = self._masks.get(np.asarray(allowed_ids, dtype=np.int64), self._masks_for)
            if not docs:
                return _NO_HITS
            avg_len = total_len / docs
            # only allowed postings compete, and only they count in the statistics; the masks already
            # exclude tombstoned rows, so the postings are filtered once, not twice
            postings = [
                [_kept(*s.postings(h, drop_deleted=False), mask) for h in unique]
                for s, mask in zip(self._segments, masks, strict=True)
            ]
        df = np.array([sum(len(p[t][0]) for p in postings) for t in range(len(unique))], dtype=np.float64)
        idf = np.log(1 + (docs - df + 0.5) / (df + 0.5)) * counts
        candidates: list[tuple[np.ndarray, np.ndarray]] = []
        for segment, seg_postings in zip(self._segments, postings, strict=True):
            scores = np.zeros(len(segment.ids), dtype=np.float32)
            # the whole index's norms are cached per segment; a caller's own average is applied per posting
            norm = segment.length_norm(avg_len) if allowed_ids is None else None
            for weight, (rows, tf) in zip(idf, seg_postings, strict=True):
                if len(rows):
                    tf = tf.astype(np.float32)
                    row_norm = norm[rows] if norm is not None else segment.norm_of(rows, avg_len)
                    scores[rows] += np.float32(weight) * tf / (row_norm + tf)
            hit = np.flatnonzero(scores > 0)
            if len(hit) > k:
                hit = hit[np.argpartition(-scores[hit], k - 1)[:k]]
            candidates.append((scores[hit], segment.ids[hit]))
        scores = np.concatenate([c[0] for c in candidates])
        ids = np.concatenate([c[1] for c in candidates])
        order = np.lexsort((ids, -scores))[:k]
        return scores[order].astype(np.float32), ids[order]

    def _masks_for(self, allowed_ids: np.ndarray) -> tuple[list[np.ndarray], int, int]:
        """Row masks per segment for an allowed set, with the set's live chunk count and total length
        (computed once per shared set: indexes/shared_sets.py)."""
        if len(allowed_ids) > 1 and np.any(allowed_ids[1:] < allowed_ids[:-1]):
            allowed_ids = np.sort(allowed_ids)
        masks = [segment.allowed_rows(allowed_ids) for segment in self._segments]
        docs = sum(int(np.count_nonzero(m)) for m in masks)
        total_len = sum(int(s.lengths[m].sum(dtype=np.int64)) for s, m in zip(self._segments, masks, strict=True))
        return masks, docs, total_len

    # -- files ----------------------------------------------------------------------------------

    def save(self, folder: Path) -> None:
        """Segments already on disk in the generation this index was loaded from are hard-linked."""
        target = folder / self.FOLDER
        target.mkdir()
        entries = []
        for segment in self._segments:
            if segment.name in self.linkable and self._source is not None:
                (target / segment.name).mkdir()
                for array in _ARRAYS:
                    _link_or_copy(self._source / segment.name / f"{array}.npy", target / segment.name / f"{array}.npy")
            else:
                segment.save(target)
            if len(segment.deleted):
                np.save(target / f"{segment.name}.deleted.npy", segment.deleted)
            entries.append({"name": segment.name, "rows": len(segment.ids), "deleted": len(segment.deleted)})
        meta = {
            "format": FORMAT,
            "count": self._docs,
            "stemmer": "english",
            "k1": K1,
            "b": B,
            "next_segment": self._next,
            "segments": entries,
        }
        (target / "meta.json").write_text(json.dumps(meta, indent=1))

    @classmethod
    def load(cls, folder: Path, *, mmap: bool = True) -> BM25KeywordIndex:
        target = folder / cls.FOLDER
        meta = json.loads((target / "meta.json").read_text())
        if meta.get("format") != FORMAT:
            raise IndexUnavailableError(
                "the keyword index was written by another version of private-rag: "
                "run `rag reindex` (or ingest) to rebuild it"
            )
        segments = []
        for entry in meta["segments"]:
            tomb = target / f"{entry['name']}.deleted.npy"
            deleted = np.load(tomb) if entry["deleted"] else np.zeros(0, dtype=np.int64)
            segments.append(Segment.load(target, entry["name"], deleted, mmap=mmap))
        index = cls(segments, next_segment=meta["next_segment"])
        index._source = target
        index.linkable = {s.name for s in index._segments}
        return index
