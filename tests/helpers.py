"""Small helpers shared by the integration tests."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from ingest.pipeline import Ingestor
from rag import jobs
from rag.db.models import Chunk, Document

REPO = Path(__file__).resolve().parents[1]
HANDBOOK = REPO / "examples" / "handbook"


def copy_tree(src: Path, dst: Path) -> Path:
    """A writable copy (../shared is read-only, and tests edit and delete files)."""
    shutil.copytree(src, dst, copy_function=shutil.copyfile)
    for path in [dst, *dst.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)
    return dst


def run_job(settings, db, embedder, path: Path, *, collection="default", groups=None, label=None, parse_workers=0):
    engine, factory = db
    with factory() as session:
        job = jobs.create_job(session, str(path.resolve()), collection, groups, label, state=jobs.RUNNING)
    return Ingestor(settings, engine, factory, embedder, parse_workers=parse_workers).run(job.id)


def chunk_fingerprint(factory) -> set[tuple[str, int, str]]:
    """What a user would call 'the same index content': (path, ordinal, text) for every chunk."""
    with factory() as session:
        rows = session.execute(select(Document.path, Chunk.ordinal, Chunk.text).join(Document)).all()
    return {(p, o, t) for p, o, t in rows}


def chunk_ids_by_path(factory) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    with factory() as session:
        for path, chunk_id in session.execute(select(Document.path, Chunk.id).join(Document)):
            out.setdefault(path, set()).add(chunk_id)
    return out


def make_user(settings, name: str, role: str = "employee", groups=("everyone",)) -> str:
    """A user with one API key, through the same store the CLI and admin API use; returns the key."""
    from rag import users
    from rag.db.session import make_engine, make_sessionmaker, migrate

    engine = make_engine(settings)
    migrate(engine)
    with make_sessionmaker(engine)() as session:
        _, plaintext = users.create_user(session, name, role, list(groups), actor=users.OPERATOR, with_key=True)
    engine.dispose()
    return plaintext


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def free_port() -> int:
    """A port nothing listens on right now, for a live server."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_serving(server: subprocess.Popen, port: int, *, timeout_s: float = 60.0, pause_s: float = 0.25) -> None:
    """Polls a live `rag serve` until /healthz answers; fails the test with the server's last words
    if it exits first, or if it is not up within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if server.poll() is not None:
            pytest.fail(server.stderr.read().decode()[-2000:] if server.stderr else "the server exited")
        time.sleep(pause_s)
    pytest.fail(f"the server on port {port} was not up within {timeout_s:g} s")
