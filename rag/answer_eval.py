"""Answerability evaluation: answer what the documents say, decline what they do not.

A folder holds `corpus.jsonl` (one paragraph per line: `_id`, `title`, `text`; each becomes one
document) and `answers.jsonl` (one question per line: `_id`, `question`, `is_impossible`, `answers`
(gold answer texts, `[]` when unanswerable), `paragraph_id`). SQuAD 2.0 folders in this shape are
read as they are (a `queries.jsonl` with `_id`, `text` supplies a missing `question`).

Scoring runs on every checked sentence the answerer recorded (with the gate's threshold at 0 a run
keeps every score), so one run gives the whole trade-off curve: at a threshold t an answer is given
when one of its grounded sentences scores >= t, and it "contains the gold answer" when the
sentences kept at t contain one of the gold texts after SQuAD's normalisation.
"""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Question:
    id: str
    question: str
    answerable: bool
    answers: list[str]
    paragraph_id: str | None = None


@dataclass
class Outcome:
    """One question as answered: the grounded sentences with their gate scores, and the time spent."""

    question: Question
    sentences: list[tuple[str, float]]  # (text, answerability score) of grounded, non-filler sentences
    total_ms: float
    gate_ms: float
    status: str = ""
    extra: dict = field(default_factory=dict)


def load_questions(folder: Path) -> list[Question]:
    answers = folder / "answers.jsonl"
    if not (folder / "corpus.jsonl").is_file() or not answers.is_file():
        raise FileNotFoundError(f"{folder}: need corpus.jsonl and answers.jsonl")
    texts = {}
    if (folder / "queries.jsonl").is_file():
        with open(folder / "queries.jsonl", encoding="utf-8") as f:
            texts = {q["_id"]: q["text"] for q in map(json.loads, f)}
    out = []
    with open(answers, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            try:
                text = row.get("question") or texts[row["_id"]]
                impossible = bool(row["is_impossible"])
                gold = [str(a) for a in row.get("answers") or []]
            except (KeyError, TypeError) as exc:
                raise ValueError(f"{answers}:{n}: missing field {exc}") from None
            if not impossible and not gold:
                raise ValueError(f"{answers}:{n}: an answerable question needs gold answers")
            out.append(Question(str(row["_id"]), text, not impossible, gold, row.get("paragraph_id")))
    return out


def normalize(text: str) -> str:
    """SQuAD's answer normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def contains_gold(answer: str, gold: list[str]) -> bool:
    said = f" {normalize(answer)} "
    return any(f" {normalize(g)} " in said for g in gold if normalize(g))


def kept_at(outcome: Outcome, threshold: float) -> list[str]:
    return [text for text, score in outcome.sentences if score >= threshold]


def summarise(outcomes: list[Outcome], threshold: float) -> dict:
    """The figures at one threshold."""
    unanswerable = [o for o in outcomes if not o.question.answerable]
    answerable = [o for o in outcomes if o.question.answerable]
    declined = sum(1 for o in unanswerable if not kept_at(o, threshold))
    answered = [o for o in answerable if kept_at(o, threshold)]
    correct = sum(1 for o in answered if contains_gold(" ".join(kept_at(o, threshold)), o.question.answers))
    total_ms = sum(o.total_ms for o in outcomes)
    gate_ms = sum(o.gate_ms for o in outcomes)
    return {
        "threshold": round(threshold, 4),
        "unanswerable": len(unanswerable),
        "unanswerable_declined": declined,
        "answerable": len(answerable),
        "answerable_answered": len(answered),
        "answered_with_gold": correct,
        "declined_rate": round(declined / len(unanswerable), 4) if unanswerable else None,
        "answered_rate": round(len(answered) / len(answerable), 4) if answerable else None,
        "gold_rate_of_answered": round(correct / len(answered), 4) if answered else None,
        "gate_ms_mean": round(gate_ms / len(outcomes), 2) if outcomes else 0.0,
        "answer_ms_mean": round(total_ms / len(outcomes), 2) if outcomes else 0.0,
        "gate_share_of_latency": round(gate_ms / total_ms, 4) if total_ms else 0.0,
    }


def curve(outcomes: list[Outcome], thresholds: list[float]) -> list[dict]:
    return [summarise(outcomes, t) for t in thresholds]
