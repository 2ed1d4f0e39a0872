"""Grounding check: every sentence shown to a user must be supported by a passage it cites.

Support is lexical and measurable: the share of a sentence's stemmed content words found in the
passages it cites, and every number it states must appear there verbatim. Small models invent
answers when the context lacks one; a sentence below the threshold is withheld, citations to
passages that were never given are dropped, and a sentence without citations is attributed to the
passage that supports it best (or withheld). The check works sentence by sentence so that streamed
answers can be checked before each sentence leaves the server.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, replace

from rag.answerability import AnswerabilityGate
from rag.lexical import content_words, numbers_in, split_sentences
from rag.prompting import NOT_FOUND, echoes_prompt
from rag.types import Passage

_CITATION = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
_DECLINE = re.compile(
    r"(?i)\b(?:cannot|can't|can ?not|could ?n[o']t|unable to|do ?n[o']t|does ?n[o']t)"
    r"\s+(?:find|locate|answer|know|determine|see)"
    r"|\bno (?:information|answer|mention|relevant)\b"
    r"|\bnot (?:found|mentioned|stated|specified|provided?|contain|a complete answer|answer)"
)


# Words models use to frame an answer ("According to the passage, the answer is 27"): no claim in them.
_FRAMING = frozenset(
    content_words(
        "answer question passage passages text texts document documents according "
        "states stated mentions mentioned says based provided context"
    )
)


# "The passage provides information about vacation days." restates the context without answering.
_META = re.compile(
    r"(?i)^\W*(?:the|this|these|that)\s+(?:passages?|texts?|documents?|context|sources?)\s+"
    r"(?:also\s+)?(?:provides?|contains?|gives?|mentions?|discuss(?:es)?|describes?|talks? about|is about|"
    r"offers?|includes?|outlines?|explains?|covers?)\b"
    r"|^\W*it\s+(?:also\s+)?(?:provides?|gives?|mentions?|discusses|describes|outlines|covers)\s+"
    r"(?:details|information|an overview)\b"
)


@dataclass(frozen=True, slots=True)
class CheckedSentence:
    text: str  # with citations normalised to the passages that support it
    cited: tuple[int, ...]
    support: float
    supported: bool
    filler: bool = False  # too short to carry a claim ("Yes.")
    answerability: float | None = None  # the answerability gate's score, when it ran
    answers: bool = True  # the gate found that the cited passage answers the question
    gate_features: dict[str, float] | None = None  # what the gate's score came from (evaluation, tuning)


@dataclass
class GroundedAnswer:
    text: str
    cited: list[int]  # passage numbers (1-based), in order of first use
    grounded: bool
    declined: bool
    support: float  # the weakest kept sentence's support; 0 when nothing was kept
    dropped_sentences: int = 0
    sentences: list[CheckedSentence] = field(default_factory=list)
    answerability: float = 0.0  # the best score among supported sentences (the decision's score)
    unanswerable: bool = False  # supported sentences existed, but none answered the question
    gate_ms: float = 0.0  # time spent in the answerability gate


class GroundingChecker:
    """`question`, when given, also requires the cited passages to be about it: a model that copies
    an unrelated passage verbatim is lexically "supported" but has not answered anything."""

    def __init__(self, passages: list[Passage], min_support: float = 0.6, question: str | None = None) -> None:
        self.passages = passages
        self.min_support = min_support
        self._words = [set(content_words(p.text)) for p in passages]
        self._numbers = [numbers_in(p.text) for p in passages]
        self._question = {w for w in content_words(question or "") if w not in _FRAMING}

    def support(self, claim_words: list[str], claim_numbers: set[str], numbers: list[int]) -> float:
        if not numbers:
            return 0.0
        vocab = set().union(*(self._words[n - 1] for n in numbers))
        if self._question and not (self._question & vocab):
            return 0.0
        known_numbers = set().union(*(self._numbers[n - 1] for n in numbers))
        if claim_numbers - known_numbers:
            return 0.0
        if not claim_words:
            return 1.0
        return sum(1 for w in claim_words if w in vocab) / len(claim_words)

    def check_sentence(self, sentence: str) -> CheckedSentence:
        given = range(1, len(self.passages) + 1)
        cited = []
        for group in _CITATION.findall(sentence):
            cited.extend(int(n) for n in group.split(","))
        valid = [n for n in dict.fromkeys(cited) if n in given]
        bare = _CITATION.sub("", sentence).strip()
        bare = re.sub(r"\s+([.,;:!?])", r"\1", bare)
        if _META.search(bare) or echoes_prompt(bare):
            return CheckedSentence(bare, (), 0.0, False)
        words = [w for w in content_words(bare) if w not in _FRAMING]
        nums = numbers_in(bare)
        if not words and not nums:
            return CheckedSentence(bare, (), 1.0, True, filler=True)
        score = self.support(words, nums, valid)
        if score < self.min_support:
            # uncited, or cited wrongly: attribute to the single passage that supports it best
            best = max(given, key=lambda n: self.support(words, nums, [n]), default=None)
            if best is not None:
                best_score = self.support(words, nums, [best])
                if best_score > score:
                    score, valid = best_score, [best]
        supported = score >= self.min_support
        text = bare if not supported else _with_citations(bare, valid)
        return CheckedSentence(text, tuple(valid) if supported else (), score, supported)

    def check(self, answer: str) -> GroundedAnswer:
        gate = SentenceGate(self)
        kept = list(gate.feed(answer)) + list(gate.finish())
        return gate.result(kept)


def _with_citations(text: str, numbers: list[int]) -> str:
    marks = "".join(f"[{n}]" for n in numbers)
    if text and text[-1] in ".!?":
        return f"{text[:-1]} {marks}{text[-1]}"
    return f"{text} {marks}"


def is_decline(text: str) -> bool:
    return bool(_DECLINE.search(text))


class SentenceGate:
    """Releases an answer sentence by sentence, each only once it is complete, supported and (with an
    answerability gate) judged to answer the question: a decision is final when a sentence is
    released, so streaming never shows a sentence that is withdrawn later."""

    def __init__(self, checker: GroundingChecker, answerability: AnswerabilityGate | None = None) -> None:
        self.checker = checker
        self.answerability = answerability
        self._buffer = ""
        self.checked: list[CheckedSentence] = []
        self.declined = False
        self.gate_s = 0.0

    def _judge(self, checked: CheckedSentence) -> CheckedSentence:
        """The answerability gate on a supported claim: the best of its cited passages decides."""
        if self.answerability is None or not checked.supported or checked.filler or not checked.cited:
            return checked
        started = time.perf_counter()
        claim = _CITATION.sub("", checked.text)
        best = max(
            (self.answerability.score(claim, self.checker.passages[n - 1].text) for n in checked.cited),
            key=lambda a: a.score,
        )
        self.gate_s += time.perf_counter() - started
        return replace(
            checked, answerability=best.score, answers=self.answerability.passes(best), gate_features=best.features
        )

    def _release(self, sentence: str) -> str | None:
        if is_decline(_CITATION.sub("", sentence)):
            self.declined = True
            return None
        checked = self.checker.check_sentence(sentence)
        if any(c.text == checked.text for c in self.checked):
            return None  # small models loop; a repeated sentence adds nothing
        checked = self._judge(checked)
        self.checked.append(checked)
        if not (checked.supported and checked.answers):
            return None
        if checked.filler and not any(c.supported and c.answers and not c.filler for c in self.checked):
            return None
        return checked.text

    def feed(self, piece: str):
        """Yields the sentences of `piece` (plus what was buffered) that are complete and supported."""
        self._buffer += piece
        sentences = split_sentences(self._buffer)
        if len(sentences) <= 1:
            return
        # the last piece may still be growing
        tail = sentences[-1]
        cut = self._buffer.rfind(tail)
        self._buffer = self._buffer[cut:] if cut >= 0 else tail
        for sentence in sentences[:-1]:
            released = self._release(sentence)
            if released:
                yield released

    def finish(self):
        rest, self._buffer = self._buffer.strip(), ""
        if rest:
            released = self._release(rest)
            if released:
                yield released

    def result(self, kept: list[str]) -> GroundedAnswer:
        claims = [c for c in self.checked if not c.filler]
        lexical = [c for c in claims if c.supported]
        supported = [c for c in lexical if c.answers]
        cited: list[int] = []
        for c in supported:
            for n in c.cited:
                if n not in cited:
                    cited.append(n)
        grounded = bool(supported)
        return GroundedAnswer(
            text=" ".join(kept) if grounded else NOT_FOUND,
            cited=cited if grounded else [],
            grounded=grounded,
            declined=self.declined and not grounded,
            support=min((c.support for c in supported), default=0.0),
            dropped_sentences=len(claims) - len(supported),
            sentences=list(self.checked),
            answerability=max((c.answerability for c in lexical if c.answerability is not None), default=0.0),
            unanswerable=bool(lexical) and not supported,
            gate_ms=self.gate_s * 1000,
        )
