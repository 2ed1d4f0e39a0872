"""Shared fixtures: both databases (SQLite always, PostgreSQL when reachable), the real embedder."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from rag.db.session import make_engine, make_sessionmaker, migrate
from rag.settings import Settings

SHARED = Path(__file__).resolve().parents[2] / "shared"
DOCS_SAMPLE = Path(os.environ.get("RAG_TEST_DOCS_SAMPLE", SHARED / "docs-sample"))
SCIFACT = Path(os.environ.get("RAG_TEST_SCIFACT", SHARED / "eval" / "scifact"))
POSTGRES_URL = os.environ.get("RAG_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REQUIRE_POSTGRES = os.environ.get("RAG_REQUIRE_POSTGRES") == "1"


def _postgres_reachable() -> bool:
    try:
        with create_engine(POSTGRES_URL).connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:  # noqa: BLE001
        return False


_PG_OK = _postgres_reachable()


DB_KINDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@contextmanager
def fresh_database(kind: str, folder: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file in `folder`, or a private schema on the PostgreSQL server."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'rag.sqlite3'}"
        return
    if not _PG_OK:
        if REQUIRE_POSTGRES:
            pytest.fail(f"PostgreSQL required but unreachable at {POSTGRES_URL}")
        pytest.skip("PostgreSQL not reachable (set RAG_TEST_POSTGRES_URL)")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


# what steers the test run itself; every other RAG_* variable configures the product and is the caller's
_TEST_RUN_VARIABLES = ("RAG_TEST_", "RAG_REQUIRE_", "RAG_SKIP_VLLM", "RAG_VLLM_VENV")
_LEAKED_BY_LIBRARIES = ("OMP_THREAD_LIMIT",)
_ENVIRONMENT_AT_START = {name: os.environ[name] for name in _LEAKED_BY_LIBRARIES if name in os.environ}


@pytest.fixture(autouse=True)
def hermetic_environment(monkeypatch):
    """Tests pass whatever the caller's shell holds: an operator's RAG_AUDIT_SIGNING_KEY,
    RAG_DATABASE_URL or RAG_MODE must not reach the settings a test builds."""
    for name in list(os.environ):
        if name.startswith("RAG_") and not name.startswith(_TEST_RUN_VARIABLES):
            monkeypatch.delenv(name)
    yield
    # a library may set a variable when a test imports it (unstructured's OCR module sets
    # OMP_THREAD_LIMIT=1): every process a later test starts would inherit it, so the suite would
    # depend on the order its tests run in (the product copes: rag/cpu_threads.py, tested on its own)
    for name in _LEAKED_BY_LIBRARIES:
        if os.environ.get(name) != _ENVIRONMENT_AT_START.get(name):
            if name in _ENVIRONMENT_AT_START:
                os.environ[name] = _ENVIRONMENT_AT_START[name]
            else:
                del os.environ[name]


@pytest.fixture(params=DB_KINDS)
def db_url(request, tmp_path):
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def settings(tmp_path, db_url) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=db_url, mode="development", _env_file=None)


@pytest.fixture
def db(settings):
    engine = make_engine(settings)
    migrate(engine)
    yield engine, make_sessionmaker(engine)
    engine.dispose()


class CountingEmbedder:
    """Wraps the real embedder to count calls; vectors are the real model's."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.dim = inner.dim
        self.max_tokens = inner.max_tokens
        self.calls = 0
        self.texts = 0

    def embed(self, texts):
        self.calls += 1
        self.texts += len(texts)
        return self.inner.embed(texts)


@pytest.fixture(scope="session")
def real_embedder():
    from rag.embedder import load_embedder

    return load_embedder(Settings(_env_file=None))


@pytest.fixture
def embedder(real_embedder) -> CountingEmbedder:
    return CountingEmbedder(real_embedder)


@pytest.fixture
def fake_embedder():
    """For tests of logic that does not depend on what the real model thinks (tests/fakes.py)."""
    from tests.fakes import FakeEmbedder

    return FakeEmbedder()


@pytest.fixture
def cli_env(settings) -> dict[str, str]:
    """Environment for running the real `rag` command in a subprocess against the test database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(
        RAG_DATA_DIR=str(settings.data_dir), RAG_DATABASE_URL=settings.resolved_database_url, RAG_MODE="development"
    )
    return env


@pytest.fixture(scope="session")
def local_llm_dir(tmp_path_factory):
    """The packaged SmolLM2 converted once per test session (the conversion itself is under test here)."""
    from rag.generators.embedded import ensure_local_model

    return ensure_local_model(None, tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def perturbed_model(tmp_path_factory):
    """A second, real embedder: the packaged model's weights with seeded noise, saved as a folder."""
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(Settings(_env_file=None).resolved_model_path, device="cpu", local_files_only=True)
    generator = torch.Generator().manual_seed(14)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() >= 2:
                param.add_(torch.randn(param.shape, generator=generator) * param.std() * 0.25)
    out = tmp_path_factory.mktemp("perturbed") / "model"
    model.save(str(out))
    return out
