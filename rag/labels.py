"""Sensitivity labels, lowest to highest. Documents carry one; their chunks inherit it."""

from __future__ import annotations

LABELS: tuple[str, ...] = ("public", "internal", "confidential", "restricted")
DEFAULT_LABEL = "internal"


def label_rank(label: object) -> int:
    """Position of a label; raises ValueError for anything that is not a known label (callers that
    decide what may leave the company treat that as "too sensitive")."""
    if not isinstance(label, str) or label not in LABELS:
        raise ValueError(f"unknown sensitivity label: {label!r}")
    return LABELS.index(label)


def at_or_below(label: object, maximum: str) -> bool:
    return label_rank(label) <= label_rank(maximum)
