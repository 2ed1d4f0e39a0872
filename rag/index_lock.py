"""The index writer lock: one process at a time publishes or switches index generations (OS or DB lock).

In the core so that the API (a rollback) and the worker (a publish) take the same lock.

PostgreSQL advisory locks cover several hosts sharing the index volume; on SQLite (one host) an
flock on the index folder does. Both vanish with the process that held them, so kill -9 never
leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, text

from rag.errors import LockBusyError

_ADVISORY_KEY = 0x52414749  # "RAGI": private-rag index writer


@contextmanager
def index_writer_lock(engine: Engine, index_dir: Path, *, wait_s: float = 3600.0) -> Iterator[None]:
    index_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_s
    fd = os.open(index_dir / "writer.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LockBusyError("another process is writing the index") from None
                time.sleep(0.1)
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                while not conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _ADVISORY_KEY}).scalar():
                    if time.monotonic() > deadline:
                        raise LockBusyError("another host is writing the index")
                    time.sleep(0.2)
                try:
                    yield
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _ADVISORY_KEY})
                    conn.commit()
        else:
            yield
    finally:
        os.close(fd)  # releases the flock
