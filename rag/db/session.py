"""Engine and session factory, with the SQLite pragmas that make concurrent use safe."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.orm import Session, sessionmaker

from rag.errors import DatabaseUnavailableError
from rag.settings import Settings


def _unreachable(ctx: ExceptionContext) -> None:
    """Turns "the database cannot be reached" into the product's DatabaseUnavailableError (a 503 in
    the one error format) instead of a driver error that surfaced as a 500 or a dropped connection.
    Only a lost connection or a failed connect counts: a deadlock or a constraint stays the driver's.
    SQLAlchemy still invalidates the pool on a lost connection, and pre-ping (where the error means
    "reconnect") is left alone, so the service recovers by itself when the server is back."""
    if ctx.is_pre_ping:
        return
    dbapi = ctx.dialect.loaded_dbapi
    connect_failed = ctx.connection is None and isinstance(ctx.original_exception, dbapi.OperationalError)
    if ctx.is_disconnect or connect_failed:
        raise DatabaseUnavailableError("the database is unreachable; retry later") from ctx.original_exception


def make_engine(settings: Settings) -> Engine:
    url = settings.resolved_database_url
    if url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 60})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()

        event.listen(engine, "handle_error", _unreachable)
        return engine
    engine = create_engine(url, pool_pre_ping=True)
    event.listen(engine, "handle_error", _unreachable)
    return engine


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (idempotent, safe to run at every start)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).resolve().parent.parent / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
