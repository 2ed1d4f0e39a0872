"""Runs every detector over a text under a deadline and checks what they return.

Fail closed: a detector that raises, hangs past the deadline or returns anything but a list of
Hits makes the whole scan fail with DetectionError; the router then keeps the query local.
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Iterable, Sequence

from rag.errors import DetectionError
from rag.sensitivity.detectors import Detector, Hit
from rag.sensitivity.views import TextViews

log = logging.getLogger(__name__)
# a few threads shared by all scans; a hung detector holds one, later scans still time out cleanly
_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="sensitivity")


class Scanner:
    def __init__(self, detectors: Sequence[Detector], timeout_s: float = 1.0) -> None:
        self.detectors = list(detectors)
        self.timeout_s = timeout_s

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.detectors]

    def scan(self, texts: Iterable[str]) -> list[Hit]:
        """Every hit in any of the texts (each scanned on its own). Raises DetectionError."""
        texts = [t for t in texts if t]
        future = _POOL.submit(self._scan_all, texts)
        try:
            return future.result(timeout=self.timeout_s)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise DetectionError("scanner", f"no result within {self.timeout_s} s") from None

    def _scan_all(self, texts: list[str]) -> list[Hit]:
        hits: set[Hit] = set()
        for text in texts:
            views = TextViews(text)
            for detector in self.detectors:
                name = getattr(detector, "name", type(detector).__name__)
                try:
                    found = detector.find(views)
                except Exception as exc:
                    log.warning("detector %s failed: %s", name, type(exc).__name__)
                    raise DetectionError(name, f"raised {type(exc).__name__}") from exc
                if not isinstance(found, list) or not all(isinstance(h, Hit) for h in found):
                    raise DetectionError(name, f"returned {type(found).__name__}, not a list of hits")
                hits.update(found)
        return sorted(hits, key=lambda h: (h.detector, h.kind))
