"""Question answering: retrieve, prompt, generate, check grounding, cite. One path for API and CLI.

`stream()` is the primitive: it yields answer text sentence by sentence, each released only after
the grounding check passed, then one final `Answer`. `answer()` simply collects it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Iterator

from rag.access import AccessScope
from rag.errors import GeneratorTimeoutError, GeneratorUnavailableError
from rag.generators.base import Generator, Usage
from rag.grounding import GroundingChecker, SentenceGate
from rag.lexical import content_words, split_sentences
from rag.prompting import NOT_FOUND, build_prompt
from rag.search import Passage, Searcher, SearchFilters

log = logging.getLogger(__name__)
FALLBACK_NOTICE = "The language model is unavailable: this answer is extracted verbatim from the documents."


@dataclass
class Citation:
    n: int
    document_id: int
    path: str
    page: int | None
    chunk_id: int
    quote: str
    document_sha256: str
    title: str | None = None
    score: float = 0.0


@dataclass
class Answer:
    answer: str
    citations: list[Citation]
    model: str
    backend: str
    grounded: bool
    status: str  # "answered" | "not_found"
    fallback: bool = False
    notice: str | None = None
    passages: list[Passage] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    timings_ms: dict[str, float] = field(default_factory=dict)
    dropped_sentences: int = 0
    support: float = 0.0
    generation: int = 0
    neutralised: int = 0


@dataclass(frozen=True)
class Delta:
    text: str


def best_quote(passage_text: str, claim: str, limit: int = 300) -> str:
    """The passage sentence sharing most words with the claim: what a reader checks first."""
    wanted = set(content_words(claim))
    sentences = split_sentences(passage_text) or [passage_text]
    # most shared words first, then sentences long enough to say something (not a heading)
    best = max(sentences, key=lambda s: (len(wanted & set(content_words(s))), len(s.split()) >= 5))
    best = " ".join(best.split())
    return best if len(best) <= limit else best[: limit - 1].rsplit(" ", 1)[0] + "…"


class QuestionAnswerer:
    def __init__(self, searcher: Searcher, generator: Generator, *, fallback: Generator | None = None,
                 max_tokens: int = 256, min_support: float = 0.6, prompt_passages: int | None = None) -> None:
        self.searcher = searcher
        self.prompt_passages = prompt_passages
        self.generator = generator
        self.fallback = fallback
        self.max_tokens = max_tokens
        self.min_support = min_support

    def stream(self, question: str, *, history: list[dict[str, str]] | None = None, top_k: int = 5,
               filters: SearchFilters | None = None, allowed_document_ids: set[int] | None = None,
               access: AccessScope | None = None, max_tokens: int | None = None) -> Iterator[Delta | Answer]:
        started = time.perf_counter()
        found = self.searcher.search(question, top_k, filters, allowed_document_ids=allowed_document_ids,
                                     access=access)
        retrieved = time.perf_counter()
        passages = found.passages
        cap = min(max_tokens or self.max_tokens, self.max_tokens)
        generator, fallback, notice = self.generator, False, None
        prompt = self._prompt(generator, question, passages, history)
        usage = Usage()
        gate = SentenceGate(GroundingChecker(prompt.passages, self.min_support, question))
        released: list[str] = []
        first_token_at = None
        if passages:
            try:
                for piece in generator.stream(prompt, cap, usage):
                    first_token_at = first_token_at or time.perf_counter()
                    for sentence in gate.feed(piece):
                        released.append(sentence)
                        yield Delta(sentence if len(released) == 1 else " " + sentence)
            except (GeneratorUnavailableError, GeneratorTimeoutError) as exc:
                if self.fallback is None or released:
                    raise
                log.warning("generator failed (%s); answering extractively", type(exc).__name__)
                generator, fallback, notice = self.fallback, True, FALLBACK_NOTICE
                prompt = self._prompt(generator, question, passages, history)
                gate = SentenceGate(GroundingChecker(prompt.passages, self.min_support, question))
                for piece in generator.stream(prompt, cap, usage):
                    for sentence in gate.feed(piece):
                        released.append(sentence)
                        yield Delta(sentence if len(released) == 1 else " " + sentence)
            for sentence in gate.finish():
                released.append(sentence)
                yield Delta(sentence if len(released) == 1 else " " + sentence)
        generated = time.perf_counter()
        result = gate.result(released)
        if not result.grounded:
            yield Delta(NOT_FOUND)
        citations = self._citations(result.cited, prompt.passages, result.sentences) if result.grounded \
            else self._closest(passages, question)
        yield Answer(
            answer=result.text, citations=citations, model=generator.model, backend=generator.backend,
            grounded=result.grounded, status="answered" if result.grounded else "not_found",
            fallback=fallback, notice=notice, passages=passages, usage=usage,
            timings_ms={
                "retrieval": round((retrieved - started) * 1000, 2),
                "embed": round(found.embed_ms, 2),
                "search": round(found.search_ms, 2),
                "generation": round((generated - retrieved) * 1000, 2),
                **({"first_token": round((first_token_at - retrieved) * 1000, 2)} if first_token_at else {}),
            },
            dropped_sentences=result.dropped_sentences, support=round(result.support, 4),
            generation=found.generation, neutralised=prompt.neutralised,
        )

    def _prompt(self, generator: Generator, question: str, passages: list[Passage], history):  # noqa: ANN001, ANN202
        """LLMs get the first `prompt_passages` passages; extraction reads them all."""
        if self.prompt_passages and generator.backend != "extractive":
            passages = passages[: self.prompt_passages]
        return build_prompt(question, passages, history)

    def answer(self, question: str, **kwargs) -> Answer:  # noqa: ANN003
        final = None
        for event in self.stream(question, **kwargs):
            if isinstance(event, Answer):
                final = event
        assert final is not None
        return final

    @staticmethod
    def _citations(cited: list[int], passages: list[Passage], sentences) -> list[Citation]:  # noqa: ANN001
        out = []
        for n in cited:
            passage = passages[n - 1]
            claim = " ".join(s.text for s in sentences if n in s.cited)
            out.append(_citation(n, passage, best_quote(passage.text, claim)))
        return out

    @staticmethod
    def _closest(passages: list[Passage], question: str, limit: int = 3) -> list[Citation]:
        """When nothing is grounded, the closest passages, quoting their sentence nearest the question."""
        return [_citation(n, p, best_quote(p.text, question)) for n, p in enumerate(passages[:limit], 1)]


def _citation(n: int, passage: Passage, quote: str) -> Citation:
    return Citation(n=n, document_id=passage.document_id, path=passage.path, page=passage.page,
                    chunk_id=passage.chunk_id, quote=quote, document_sha256=passage.document_sha256,
                    title=passage.title, score=round(passage.score, 6))
