"""Ordering of sensitivity labels (the labels themselves are rag.types.Label)."""

from __future__ import annotations

from rag.types import LABELS


def label_rank(label: object) -> int:
    """Position of a label; raises ValueError for anything that is not a known label (callers that
    decide what may leave the company treat that as "too sensitive")."""
    if not isinstance(label, str) or label not in LABELS:
        raise ValueError(f"unknown sensitivity label: {label!r}")
    return LABELS.index(label)  # type: ignore[arg-type]


def at_or_below(label: object, maximum: str) -> bool:
    return label_rank(label) <= label_rank(maximum)
