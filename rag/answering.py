"""Question answering: retrieve, prompt, generate, check grounding, cite. One path for API and CLI.

`stream()` is the primitive: it yields answer text sentence by sentence, each released only after
the grounding check passed, then one final `Answer`. `answer()` simply collects it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator as Generator_
from collections.abc import Iterator
from dataclasses import dataclass, replace

from rag.access import AccessScope
from rag.answerability import AnswerabilityGate
from rag.auth.principal import Principal
from rag.errors import EgressBlockedError, GenerationInterruptedError, GeneratorUnavailableError
from rag.grounding import GroundedAnswer, GroundingChecker, SentenceGate
from rag.lexical import content_words, split_sentences
from rag.links import safe_links
from rag.prompting import NEUTRALISED, NOT_FOUND, build_prompt, neutralise, without_markup
from rag.protocols import Generator, Router
from rag.search import Searcher
from rag.types import DISABLED, Answer, Citation, Delta, Passage, RouteDecision, SearchFilters, Usage

log = logging.getLogger(__name__)
FALLBACK_NOTICE = "The language model is unavailable: this answer is extracted verbatim from the documents."


def best_quote(passage_text: str, claim: str, limit: int = 300, *, sentences: list[str] | None = None) -> str:
    """The passage sentence sharing most words with the claim: what a reader checks first (never a
    sentence neutralised as an instruction, while the passage has another)."""
    wanted = set(content_words(claim))
    if sentences is None:
        sentences = split_sentences(passage_text) or [passage_text]
        sentences = [s for s in sentences if NEUTRALISED not in s] or sentences
    # most shared words first, then sentences long enough to say something (not a heading)
    best = max(sentences, key=lambda s: (len(wanted & set(content_words(s))), len(s.split()) >= 5))
    best = " ".join(best.split())
    return best if len(best) <= limit else best[: limit - 1].rsplit(" ", 1)[0] + "…"


def quote_for(passage_text: str, claim: str, link_hosts: tuple[str, ...] = ()) -> str:
    """A quote is verbatim (whitespace aside), so a reader can find it in the passage: it is chosen among
    the sentences shown unchanged, i.e. holding no instruction, fake turn, hidden text or link to a host
    outside the allow-list. Only a passage with no such sentence is quoted from its neutralised,
    link-filtered text."""

    def shown_unchanged(sentence: str) -> bool:
        text, changed = neutralise(sentence)
        return not changed and text == sentence and safe_links(sentence, link_hosts) == sentence

    shown_as_is = [s for s in split_sentences(passage_text) if shown_unchanged(s)]
    if shown_as_is:
        return best_quote(passage_text, claim, sentences=shown_as_is)
    return " ".join(safe_links(best_quote(neutralise(passage_text)[0], claim), link_hosts).split())


@dataclass
class _Outcome:
    """One generator's checked answer over one set of passages."""

    generator: Generator
    prompt_passages: list[Passage]
    result: GroundedAnswer | None
    deltas: list[str]
    fallback: bool = False
    notice: str | None = None
    first_token_at: float | None = None
    neutralised: int = 0


class QuestionAnswerer:
    def __init__(
        self,
        searcher: Searcher,
        generator: Generator,
        *,
        fallback: Generator | None = None,
        max_tokens: int = 256,
        min_support: float = 0.6,
        prompt_passages: int | None = None,
        router: Router | None = None,
        external: Generator | None = None,
        link_hosts: tuple[str, ...] = (),
        answerability_threshold: float | None = None,
    ) -> None:
        self.searcher = searcher
        self.link_hosts = tuple(link_hosts)
        self.prompt_passages = prompt_passages
        self.generator = generator
        self.fallback = fallback
        self.max_tokens = max_tokens
        self.min_support = min_support
        self.router = router
        self.external = external
        # None turns the answerability gate off (lexical grounding only)
        self.answerability_threshold = answerability_threshold

    def stream(
        self,
        question: str,
        *,
        history: list[dict[str, str]] | None = None,
        top_k: int = 5,
        filters: SearchFilters | None = None,
        allowed_document_ids: set[int] | None = None,
        access: AccessScope | None = None,
        max_tokens: int | None = None,
        principal: Principal | None = None,
    ) -> Iterator[Delta | Answer]:
        started = time.perf_counter()
        found = self.searcher.search(question, top_k, filters, allowed_document_ids=allowed_document_ids, access=access)
        retrieved = time.perf_counter()
        passages = found.passages
        cap = min(max_tokens or self.max_tokens, self.max_tokens)
        usage = Usage()
        route = DISABLED
        if self.router is not None and self.external is not None:
            route = self.router.decide(question, passages, principal, history)
        outcome = None
        if route.target == "external":
            outcome, route = self._escalate(question, route, history, cap, usage, found.query_vector)
        if outcome is None:
            # local_declines: nothing reaches the caller until we know which model answers
            outcome = yield from _relay(
                self._local(question, passages, history, cap, usage, found.query_vector),
                forward=not route.escalate_on_decline,
            )
            if route.escalate_on_decline:
                basis = route.reason.split(";")[0]
                if outcome.result.grounded:
                    route = route.stay_local(basis + "; the local model answered", "local_answered")
                else:
                    declined = replace(
                        route,
                        target="external",
                        rule="local_declined",
                        reason="local model found no grounded answer; " + basis,
                    )
                    escalated, route = self._escalate(question, declined, history, cap, usage, found.query_vector)
                    outcome = escalated or outcome
                if outcome.result.grounded:
                    yield from (Delta(t) for t in outcome.deltas)
        elif outcome.deltas:
            yield from (Delta(t) for t in outcome.deltas)
        generated = time.perf_counter()
        result = outcome.result
        if not result.grounded and result.text == NOT_FOUND:
            yield Delta(NOT_FOUND)
        citations = (
            self._citations(result.cited, outcome.prompt_passages, result.sentences)
            if result.grounded
            else self._closest(passages, question)
        )
        if result.grounded or result.text != NOT_FOUND:
            status = "answered"
        else:
            status = "declined" if result.unanswerable else "not_found"
        gated = self.answerability_threshold is not None and bool(outcome.prompt_passages)
        yield Answer(
            answer=result.text,
            citations=citations,
            model=outcome.generator.model,
            backend=outcome.generator.backend,
            grounded=result.grounded,
            status=status,
            fallback=outcome.fallback,
            notice=outcome.notice,
            passages=passages,
            usage=usage,
            timings_ms={
                "retrieval": round((retrieved - started) * 1000, 2),
                "embed": round(found.embed_ms, 2),
                "search": round(found.search_ms, 2),
                "generation": round((generated - retrieved) * 1000, 2),
                "answerability": round(result.gate_ms, 2),
                **(
                    {"first_token": round((outcome.first_token_at - retrieved) * 1000, 2)}
                    if outcome.first_token_at
                    else {}
                ),
            },
            dropped_sentences=result.dropped_sentences,
            support=round(result.support, 4),
            generation=found.generation,
            neutralised=outcome.neutralised,
            route=route,
            answerability=round(result.answerability, 4) if gated else None,
            answerability_threshold=self.answerability_threshold if gated else None,
            sentences=list(result.sentences),
        )

    def _local(
        self, question: str, passages: list[Passage], history, cap: int, usage: Usage, query_vector=None
    ) -> Generator_[Delta, None, _Outcome]:
        """The local model, streaming sentence by sentence; the extractive fallback if it is down."""
        outcome = _Outcome(self.generator, [], GroundedAnswer(NOT_FOUND, [], False, False, 0.0), [])
        if not passages:
            return outcome
        try:
            outcome = yield from self._generate(self.generator, question, passages, history, cap, usage, query_vector)
        except GenerationInterruptedError:
            raise  # part of the answer is out: a fallback cannot finish someone else's sentences
        except GeneratorUnavailableError as exc:
            if self.fallback is None:
                raise
            log.warning("generator failed (%s); answering extractively", type(exc).__name__)
            outcome = yield from self._generate(self.fallback, question, passages, history, cap, usage, query_vector)
            outcome.fallback, outcome.notice = True, FALLBACK_NOTICE
        return outcome

    def _generate(
        self,
        generator: Generator,
        question: str,
        passages: list[Passage],
        history,
        cap: int,
        usage: Usage,
        query_vector=None,
    ) -> Generator_[Delta, None, _Outcome]:
        prompt = self._prompt(generator, question, passages, history)
        answerability = None
        if self.answerability_threshold is not None:
            answerability = AnswerabilityGate(
                question,
                getattr(self.searcher, "embedder", None),
                self.answerability_threshold,
                retrieved=[p.text for p in passages],
                question_vector=query_vector,
            )
        gate = SentenceGate(GroundingChecker(prompt.passages, self.min_support, question), answerability)
        outcome = _Outcome(generator, prompt.passages, None, [], neutralised=prompt.neutralised)

        def release(sentence: str) -> Iterator[Delta]:
            # never echo a delimiter or template token, nor a link or image to a host outside the allowed ones
            sentence = " ".join(safe_links(without_markup(sentence), self.link_hosts).split())
            if sentence:
                outcome.deltas.append(sentence if not outcome.deltas else " " + sentence)
                yield Delta(outcome.deltas[-1])

        try:
            for piece in generator.stream(prompt, cap, usage):
                outcome.first_token_at = outcome.first_token_at or time.perf_counter()
                for sentence in gate.feed(piece):
                    yield from release(sentence)
        except GeneratorUnavailableError as exc:
            if outcome.deltas:
                raise GenerationInterruptedError(f"the model failed mid-answer: {exc}") from exc
            raise
        for sentence in gate.finish():
            yield from release(sentence)
        outcome.result = gate.result([d.strip() for d in outcome.deltas])
        return outcome

    def _escalate(
        self, question: str, route: RouteDecision, history, cap: int, usage: Usage, query_vector=None
    ) -> tuple[_Outcome | None, RouteDecision]:
        """The external model over the sendable passages only, collected whole (so a failure half-way
        sends nothing to the caller); on any failure the query is answered locally."""
        passages = list(route.send)
        try:
            if not passages:
                return self._general_knowledge(question, history, cap, usage), route
            outcome = _collect(self._generate(self.external, question, passages, history, cap, usage, query_vector))
            return outcome, route
        except Exception as exc:  # noqa: BLE001 - the vendor failing or the final scan blocking: stay local
            log.warning("escalation failed (%s); answering locally", type(exc).__name__)
            rule = "egress_blocked" if isinstance(exc, EgressBlockedError) else "external_failed"
            return None, route.stay_local(f"escalation stopped ({exc}); answered locally", rule)

    def _general_knowledge(self, question: str, history, cap: int, usage: Usage) -> _Outcome:
        """No internal passage: the external model answers from general knowledge, marked as such."""
        prompt = build_prompt(question, [], history, general=True)
        text = "".join(self.external.stream(prompt, cap, usage))
        text = " ".join(safe_links(without_markup(text), self.link_hosts).split())
        result = GroundedAnswer(text or NOT_FOUND, [], False, not text, 0.0)
        return _Outcome(
            self.external,
            [],
            result,
            [text] if text else [],
            notice=f"General knowledge from {self.external.model}: not from your documents.",
        )

    def _prompt(self, generator: Generator, question: str, passages: list[Passage], history):
        """LLMs get the first `prompt_passages` passages; extraction reads them all."""
        if self.prompt_passages and generator.backend != "extractive":
            passages = passages[: self.prompt_passages]
        return build_prompt(question, passages, history)

    def answer(self, question: str, **kwargs) -> Answer:
        final = None
        for event in self.stream(question, **kwargs):
            if isinstance(event, Answer):
                final = event
        assert final is not None
        return final

    def _quote(self, passage: Passage, claim: str) -> str:
        return quote_for(passage.text, claim, self.link_hosts)

    def _citations(self, cited: list[int], passages: list[Passage], sentences) -> list[Citation]:
        out = []
        for n in cited:
            passage = passages[n - 1]
            claim = " ".join(s.text for s in sentences if n in s.cited)
            out.append(_citation(n, passage, self._quote(passage, claim)))
        return out

    def _closest(self, passages: list[Passage], question: str, limit: int = 3) -> list[Citation]:
        """When nothing is grounded, the closest passages, quoting their sentence nearest the question."""
        return [_citation(n, p, self._quote(p, question)) for n, p in enumerate(passages[:limit], 1)]


def _relay(events: Generator_[Delta, None, _Outcome], *, forward: bool) -> Generator_[Delta, None, _Outcome]:
    """Pass a generation's deltas on (or hold them back) and return its outcome."""
    while True:
        try:
            event = next(events)
        except StopIteration as done:
            return done.value
        if forward:
            yield event


def _collect(events: Generator_[Delta, None, _Outcome]) -> _Outcome:
    """Run a generation to its end, passing nothing on: the answer is taken whole."""
    try:
        while True:
            next(events)
    except StopIteration as done:
        return done.value


def _citation(n: int, passage: Passage, quote: str) -> Citation:
    return Citation(
        n=n,
        document_id=passage.document_id,
        path=passage.path,
        page=passage.page,
        chunk_id=passage.chunk_id,
        quote=quote,
        document_sha256=passage.document_sha256,
        title=passage.title,
        score=round(passage.score, 6),
    )
