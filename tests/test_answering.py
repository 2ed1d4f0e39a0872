"""The answerer's fallback rule: a model that fails before saying anything is replaced by extraction;
one that fails after part of its answer went out is not (nobody may finish someone else's sentences)."""

from __future__ import annotations

import pytest

from rag.answering import QuestionAnswerer
from rag.errors import GenerationInterruptedError, GeneratorUnavailableError
from rag.generators.extractive import ExtractiveGenerator
from rag.types import Answer, Delta, Passage, SearchResult

TEXT = "Full-time employees get 27 vacation days per calendar year. Unused days expire in March."
PASSAGE = Passage(
    chunk_id=1,
    document_id=1,
    path="/hb/time-off.md",
    title="Time off",
    section=None,
    pages=[],
    text=TEXT,
    score=1.0,
    document_sha256="0" * 64,
    document_version=1,
    label="internal",
    collection="hb",
)


class OnePassageSearcher:
    def search(self, question, top_k, filters=None, **_):
        return SearchResult([PASSAGE], generation=1)


class FailingModel:
    """Says `before` (maybe nothing), then the server goes away."""

    backend = "openai"
    model = "scripted"

    def __init__(self, before: str) -> None:
        self.before = before

    def stream(self, prompt, max_tokens, usage):
        if self.before:
            yield self.before
        raise GeneratorUnavailableError("connection reset")

    def ready(self) -> bool:
        return False


def _answerer(model: FailingModel) -> QuestionAnswerer:
    return QuestionAnswerer(OnePassageSearcher(), model, fallback=ExtractiveGenerator())


def test_a_model_down_before_its_first_word_falls_back_to_extraction():
    events = list(_answerer(FailingModel("")).stream("How many vacation days do employees get?"))
    final = events[-1]
    assert isinstance(final, Answer) and final.fallback and final.backend == "extractive"
    assert final.grounded and "27 vacation days" in final.answer


def test_a_model_failing_mid_answer_is_not_finished_by_the_fallback():
    # the gate releases a sentence once the next one begins: the first sentence is out when it fails
    stream = _answerer(FailingModel("Full-time employees get 27 vacation days per calendar year [1]. Unused")).stream(
        "How many vacation days do employees get?"
    )
    released = []
    with pytest.raises(GenerationInterruptedError, match="mid-answer"):
        for event in stream:
            released.append(event)
    assert released and all(isinstance(e, Delta) for e in released)  # the sentence that passed went out
