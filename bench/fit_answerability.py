"""Fit the answerability gate's weights on a tune split's dump (`rag eval answers ... --dump FILE`).

Each grounded answer sentence is one example: positive when its question is answerable and the
sentence contains a gold answer (SQuAD normalisation), negative when the question is unanswerable or
the sentence does not state a gold answer (an on-topic sentence that does not answer is what the gate
must withhold). A logistic regression over rag.answerability.FEATURES gives the weights pasted into
rag/answerability.py; then rerun `rag eval answers` on the tune split for the trade-off curve.

    python bench/fit_answerability.py tune-extractive.jsonl [tune-embedded.jsonl ...]
"""

from __future__ import annotations

import json
import sys

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from rag.answer_eval import Outcome, Question, contains_gold, curve
from rag.answerability import FEATURES


def examples(paths: list[str]) -> tuple[np.ndarray, np.ndarray]:
    rows, labels = [], []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for record in map(json.loads, f):
                for sentence in record["sentences"]:
                    if not sentence["features"]:
                        continue
                    rows.append([sentence["features"][name] for name in FEATURES])
                    gold = record["answerable"] and contains_gold(sentence["text"], record["answers"])
                    labels.append(int(gold))
    return np.array(rows, dtype=float), np.array(labels)


def rescored(paths: list[str], weights: np.ndarray, bias: float) -> list[Outcome]:
    """The dumps' answers as they would be with these weights (the generator does not depend on them)."""
    outcomes = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for r in map(json.loads, f):
                q = Question(r["_id"], r["question"], r["answerable"], r["answers"])
                sentences = []
                for s in r["sentences"]:
                    z = bias + float(np.dot(weights, [s["features"][n] for n in FEATURES])) if s["features"] else -9
                    sentences.append((s["text"], 1 / (1 + np.exp(-z))))
                outcomes.append(Outcome(q, sentences, r["total_ms"], r["gate_ms"]))
    return outcomes


def main() -> None:
    x, y = examples(sys.argv[1:])
    model = LogisticRegression(C=1.0, max_iter=2000).fit(x, y)
    auc = roc_auc_score(y, model.predict_proba(x)[:, 1])
    print(f"{len(y)} sentences, {int(y.sum())} positive; training AUC {auc:.3f}")
    for name, column in zip(FEATURES, x.T, strict=True):
        print(f"  {name:20s} AUC {roc_auc_score(y, column):.3f}")
    print("WEIGHTS = (" + ", ".join(f"{w:.4f}" for w in model.coef_[0]) + ")")
    print(f"BIAS = {model.intercept_[0]:.4f}")
    print("threshold  unanswerables declined  answerables answered  answered with gold")
    for row in curve(rescored(sys.argv[1:], model.coef_[0], model.intercept_[0]), [i / 40 for i in range(41)]):
        print(
            f"{row['threshold']:9.3f}  {row['unanswerable_declined']:4d}/{row['unanswerable']} ({row['declined_rate']})"
            f"  {row['answerable_answered']:4d}/{row['answerable']} ({row['answered_rate']})"
            f"  {row['answered_with_gold']} ({row['gold_rate_of_answered']})"
        )


if __name__ == "__main__":
    main()
