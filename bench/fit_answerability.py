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

from rag.answer_eval import contains_gold
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


def main() -> None:
    x, y = examples(sys.argv[1:])
    model = LogisticRegression(C=1.0, max_iter=2000).fit(x, y)
    print(f"{len(y)} sentences, {int(y.sum())} positive; training AUC {roc_auc_score(y, model.predict_proba(x)[:, 1]):.3f}")
    for name, column in zip(FEATURES, x.T, strict=True):
        print(f"  {name:20s} AUC {roc_auc_score(y, column):.3f}")
    print("WEIGHTS = (" + ", ".join(f"{w:.4f}" for w in model.coef_[0]) + ")")
    print(f"BIAS = {model.intercept_[0]:.4f}")


if __name__ == "__main__":
    main()
