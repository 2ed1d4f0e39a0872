"""Answerability gate: does the cited passage state the answer to *this* question, not just its words?

The grounding check (rag/grounding.py) asks whether a sentence is supported by the passage it cites.
That is not enough: a passage about vacation days supports "Employees get 27 vacation days [1]." for
the question "How many vacation days do contractors get?" too. This gate reads the question against
the sentence of the cited passage that supports each answer sentence and scores, from 0 to 1, whether
that sentence answers it:

- the question's focus words are present in the supporting sentence (and in the passage);
- none of its focus words is missing from every retrieved passage;
- its anchors (names, numbers, years: the constraints a crowd-sourced or real "trick" question
  swaps) all occur in the cited passage;
- a negation in the question is matched in the sentence;
- the kind of answer the question asks for (who -> a name, when -> a date, how many -> a number) is
  in the answer sentence beyond the question's own words;
- the embedder's cosine between the question and the supporting sentence.

The features are combined by a logistic model whose weights were fitted on the `tune` split of
SQuAD 2.0 dev (`bench/fit_answerability.py`), so the score is a calibrated probability on that data;
`RAG_ANSWERABILITY_THRESHOLD` is the cut-off. It costs a couple of milliseconds plus one
single-text embedding per answer sentence, and it is applied per sentence before the sentence is released,
so streaming never shows a sentence the gate later withdraws.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from rag.lexical import content_words, numbers_in, split_sentences
from rag.protocols import Embedder
from rag.retrieval import embed_query

# Words that frame the question rather than constrain it.
_QUESTION_FRAME = frozenset(
    content_words("what which who whom whose when where why how name named kind type called many much")
)
_NEGATION = re.compile(r"(?i)\b(?:not|never|no|none|neither|nor|without|cannot)\b|n't\b")
# An anchor: a capitalised word not at the start of the question, or a number.
_CAPITALISED = re.compile(r"(?<![.?!:]\s)(?<!^)\b[A-Z][a-zA-Z'-]+")
_YEAR_OR_DATE = re.compile(
    r"(?i)\b(?:1[0-9]{3}|20[0-9]{2}|[0-9]{1,2}(?:st|nd|rd|th)|january|february|march|april|may|june|july|"
    r"august|september|october|november|december|century|centuries|decade|monday|tuesday|wednesday|"
    r"thursday|friday|saturday|sunday|spring|summer|autumn|fall|winter|bc|ad|\d{1,2}:\d{2}|"
    r"today|tomorrow|yesterday|week|weeks|day|days|month|months|year|years)\b"
)
_NUMBER_WORD = re.compile(
    r"(?i)\b(?:\d+(?:[.,]\d+)*|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|"
    r"forty|fifty|hundred|thousand|million|billion|dozen|half|percent|several|few)\b"
)

# Fitted on squad2-dev/tune, all 500 questions answered by the extractive generator (776 grounded
# sentences, 218 stating a gold answer): bench/fit_answerability.py. Order of FEATURES.
FEATURES = (
    "focus_sentence",
    "focus_passage",
    "focus_unseen",
    "anchors_missing",
    "negation_unmatched",
    "type_match",
    "cosine",
)
WEIGHTS = (2.6477, 0.0973, 0.2938, -0.7871, -1.2941, 0.8963, 2.6835)
BIAS = -5.2475


@dataclass(frozen=True, slots=True)
class Answerability:
    """One answer sentence's answerability: the score, and the features it came from (for the audit)."""

    score: float
    features: dict[str, float]
    supporting: str  # the cited passage's sentence the score was computed on


def expected_kind(question: str) -> str | None:
    """The kind of answer a question asks for, where it can be told from its wording."""
    q = question.lower()
    if re.search(r"\bhow (?:many|much|long|far|old|big|large|often|high|tall)\b|\bwhat (?:percentage|number)\b", q):
        return "number"
    if re.search(r"\bwhen\b|\bwhat (?:year|date|day|month|century|time|decade)\b|\bin which year\b", q):
        return "time"
    if re.search(r"\bwho(?:m|se)?\b", q):
        return "name"
    return None


def _has_kind(kind: str, answer: str, question: str) -> bool:
    asked = set(content_words(question))
    if kind == "number":
        return bool(numbers_in(answer) - numbers_in(question)) or any(
            m.lower() not in question.lower() for m in _NUMBER_WORD.findall(answer)
        )
    if kind == "time":
        return any(m.lower() not in question.lower() for m in _YEAR_OR_DATE.findall(answer))
    # a name: a capitalised word the question does not already contain
    return any(content_words(w) and content_words(w)[0] not in asked for w in _CAPITALISED.findall(answer))


def anchors(question: str) -> list[str]:
    """The question's constraints that must occur in the passage: names and numbers (stemmed)."""
    found = [w for m in _CAPITALISED.findall(question) for w in content_words(m)]
    found += sorted(numbers_in(question))
    return [w for w in dict.fromkeys(found) if w not in _QUESTION_FRAME]


def supporting_sentence(passage_text: str, claim: str) -> str:
    """The passage sentence that shares most words with the answer sentence."""
    wanted = set(content_words(claim))
    sentences = split_sentences(passage_text) or [passage_text]
    return max(sentences, key=lambda s: len(wanted & set(content_words(s))))


class AnswerabilityGate:
    """Scores answer sentences against one question. Built per answer; caches the question's parts."""

    def __init__(
        self,
        question: str,
        embedder: Embedder | None,
        threshold: float,
        retrieved: list[str] | None = None,
        question_vector: np.ndarray | None = None,
    ) -> None:
        self.question = question
        self.threshold = threshold
        self._embedder = embedder
        self._focus = [w for w in dict.fromkeys(content_words(question)) if w not in _QUESTION_FRAME]
        self._anchors = anchors(question)
        self._negated = bool(_NEGATION.search(question))
        self._kind = expected_kind(question)
        self._question_vector = question_vector  # the search already embedded the question
        # focus words that no retrieved passage contains: what the question asks about is not there at all
        seen = set().union(*(content_words(t) for t in retrieved or []))
        self._unseen = sum(1 for w in self._focus if w not in seen) if retrieved else 0

    def features(self, answer_sentence: str, passage_text: str) -> tuple[dict[str, float], str]:
        supporting = supporting_sentence(passage_text, answer_sentence)
        sentence_words = set(content_words(supporting))
        passage_words = set(content_words(passage_text))
        focus = self._focus or ["-"]
        missing = sum(1 for a in self._anchors if a not in passage_words)
        cosine = 0.0
        if self._embedder is not None:
            # one text at a time: the embedder's single-text path (measured fastest for one text, its
            # vectors within cosine 0.999 of the bulk path's), not the batch path
            if self._question_vector is None:
                self._question_vector = embed_query(self._embedder, self.question)
            cosine = float(np.dot(self._question_vector, embed_query(self._embedder, supporting)))
        values = {
            "focus_sentence": sum(1 for w in focus if w in sentence_words) / len(focus),
            "focus_passage": sum(1 for w in focus if w in passage_words) / len(focus),
            "focus_unseen": float(min(self._unseen, 2)),
            "anchors_missing": float(min(missing, 2)),
            "negation_unmatched": float(self._negated and not _NEGATION.search(supporting)),
            "type_match": float(self._kind is None or _has_kind(self._kind, answer_sentence, self.question)),
            "cosine": cosine,
        }
        return values, supporting

    def score(self, answer_sentence: str, passage_text: str) -> Answerability:
        values, supporting = self.features(answer_sentence, passage_text)
        z = BIAS + sum(w * values[name] for w, name in zip(WEIGHTS, FEATURES, strict=True))
        return Answerability(round(1.0 / (1.0 + math.exp(-z)), 4), values, supporting)

    def passes(self, result: Answerability) -> bool:
        return result.score >= self.threshold
