"""Parsing and chunking in separate processes: overlaps with embedding, and a file that hangs or
crashes its parser (native code, memory) fails alone instead of taking the job down."""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from rag.errors import ParseError
from rag.paths import is_unlinked
from rag.types import ChunkDraft


@dataclass(frozen=True)
class ParseConfig:
    model_path: str
    chunk_tokens: int
    overlap_tokens: int
    max_bytes: int
    ocr: str


@dataclass
class ParsedFile:
    path: str
    title: str | None
    chunks: list[ChunkDraft] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None


_worker_state: dict = {}


# Plain-text formats have pure-Python parsers and cost a few ms each: parsing them in-process avoids
# competing with the embedder for the CPU (SciFact: ingest/embed ratio 1.0 in-process vs 0.81 in a
# separate process). Formats handled by native libraries or external tools stay isolated.
IN_PROCESS_SUFFIXES = {".txt", ".text", ".log", ".md", ".markdown", ".csv", ".tsv", ".json"}


def _load_state(config: ParseConfig) -> None:
    from rag.tokens import WindowTokenizer

    if _worker_state.get("config") != config:
        _worker_state.update(config=config, tokenizer=WindowTokenizer(config.model_path))


def _init_worker(config: ParseConfig) -> None:
    """Set-up of a parser process (never of the CLI's own process, whose stdout carries JSON)."""
    import logging
    import warnings

    # Parser libraries print to stdout; the CLI's stdout carries its JSON result, so send them to stderr.
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    # Parser libraries warn about every odd PDF object; the file's outcome is what the job records.
    for name in ("pypdf", "pdfminer", "unstructured", "pikepdf"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    _exit_with_parent(os.getppid())
    _load_state(config)


def _exit_with_parent(parent: int, every_s: float = 1.0) -> None:
    """A parser process ends when the ingest that started it is gone: a killed ingest (SIGKILL, OOM)
    cannot shut its pool down, and the workers, blocked on a queue whose write end they hold
    themselves, would otherwise live on holding the tokenizer and parser libraries (~700 MB each)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every_s)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def parse_and_chunk(path: str) -> ParsedFile:
    from ingest.chunking import chunk_elements
    from ingest.parsing import parse_file

    config: ParseConfig = _worker_state["config"]
    tokenizer = _worker_state["tokenizer"]
    started = time.perf_counter()
    try:
        if not is_unlinked(Path(path)):  # checked when hashed too; the parse opens the file again
            raise ParseError("a link appeared on its path; not followed")
        elements = parse_file(Path(path), max_bytes=config.max_bytes, ocr=config.ocr)
        max_tokens = min(config.chunk_tokens, tokenizer.max_tokens)
        chunks = chunk_elements(elements, tokenizer, max_tokens, config.overlap_tokens)
        if not chunks:
            raise ParseError("no extractable text")
    except ParseError as exc:
        return ParsedFile(path, None, seconds=time.perf_counter() - started, error=str(exc))
    except Exception as exc:  # noqa: BLE001 - a bug on one file must not stop the job
        return ParsedFile(path, None, seconds=time.perf_counter() - started, error=f"{type(exc).__name__}: {exc}"[:300])
    title = next((e.text[:1000] for e in elements if e.category == "Title"), None) or Path(path).stem
    return ParsedFile(path, title, chunks, time.perf_counter() - started)


class ParsePool:
    """Ordered, bounded-lookahead parsing; `workers=0` parses in-process (no isolation)."""

    def __init__(self, config: ParseConfig, workers: int = 1, timeout_s: float = 600.0) -> None:
        self.config = config
        self.workers = workers
        self.timeout_s = timeout_s
        # Parsing must run ahead through a whole embedding batch (hundreds of small files), or the
        # parser idles while the embedder works and the two serialise: measured 0.84 vs. 0.9+.
        self.lookahead = 256
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> ParsePool:
        _load_state(self.config)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop()

    def _start(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(self.config,),
            )
        return self._pool

    def _stop(self, kill: bool = False) -> None:
        if self._pool is None:
            return
        if kill:
            # ProcessPoolExecutor cannot cancel a running call; killing its processes is the only way.
            for process in list(getattr(self._pool, "_processes", {}).values()):
                process.kill()
        self._pool.shutdown(wait=not kill, cancel_futures=True)
        self._pool = None

    def imap(self, paths: Iterable[str]) -> Iterator[ParsedFile]:
        if self.workers == 0:
            yield from (parse_and_chunk(p) for p in paths)
            return
        todo = deque(paths)
        pending: deque[tuple[str, Future, int]] = deque()
        while todo or pending:
            while todo and len(pending) < self.lookahead:
                path = todo.popleft()
                pending.append((path, self._submit(path), 0))
            path, future, retries = pending[0]
            try:
                result = future.result(timeout=self.timeout_s)
            except FutureTimeout:
                result = ParsedFile(path, None, error=f"parsing took longer than {self.timeout_s:.0f} s")
                pending = self._restart_with(pending, failed_head=True)
            except BrokenProcessPool:
                if retries == 0 and self.workers > 1:
                    # With several workers the head is not necessarily the file that crashed: retry it once.
                    pending = self._restart_with(pending, failed_head=False)
                    continue
                result = ParsedFile(path, None, error="the parser crashed on this file (native fault or out of memory)")
                pending = self._restart_with(pending, failed_head=True)
            else:
                pending.popleft()
            yield result

    def _restart_with(self, pending: deque, failed_head: bool) -> deque:
        self._stop(kill=True)
        items = list(pending)
        head = items.pop(0)
        resubmitted: deque = deque()
        if not failed_head:
            resubmitted.append((head[0], self._submit(head[0]), head[2] + 1))
        for path, future, retries in items:
            parsed_here = Path(path).suffix.lower() in IN_PROCESS_SUFFIXES  # already resolved, never cancelled
            resubmitted.append((path, future if parsed_here else self._submit(path), retries))
        return resubmitted

    def _submit(self, path: str) -> Future:
        if Path(path).suffix.lower() in IN_PROCESS_SUFFIXES:
            future: Future = Future()
            future.set_result(parse_and_chunk(path))
            return future
        return self._start().submit(parse_and_chunk, path)
