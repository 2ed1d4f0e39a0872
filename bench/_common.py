"""What every benchmark shares: where the project and the evaluation data are, percentiles."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# the shared data sits beside the checkout (../shared) or, from a git worktree, further up
SCIFACT = next(
    (p / "shared" / "eval" / "scifact" for p in REPO.parents if (p / "shared" / "eval" / "scifact").is_dir()),
    REPO.parent / "shared" / "eval" / "scifact",
)
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def pct(values: list[float], q: float) -> float:
    """The q-quantile by nearest rank (q=0.5 median, 0.95 p95)."""
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]
