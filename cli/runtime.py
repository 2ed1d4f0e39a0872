"""What every command shares: settings, database and (lazily) the embedder; failing with one line.

Heavy modules are imported inside the functions that need them, so `rag --help` stays instant.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, NoReturn

import click

from rag.errors import RagError
from rag.settings import Settings

if TYPE_CHECKING:
    from ingest.pipeline import Ingestor
    from ingest.report import JobReport
    from rag.audit import HashChainAuditLog
    from rag.auth.principal import Principal
    from rag.protocols import Embedder


def fail(message: str, code: int = 2) -> NoReturn:
    """One line on stderr and an exit code: what a script calling `rag` can act on."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


class Runtime:
    """The composition root of one CLI process."""

    def __init__(self) -> None:
        from pydantic import ValidationError

        try:
            self.settings = Settings()
        except ValidationError as exc:
            fail(f"invalid settings: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}")
        from rag.db.session import make_engine, make_sessionmaker, migrate

        self.engine = make_engine(self.settings)
        migrate(self.engine)
        self.factory = make_sessionmaker(self.engine)
        self._embedder: Embedder | None = None

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            from rag.embedder import load_embedder

            self._embedder = load_embedder(self.settings)
        return self._embedder

    def ingestor(self, parse_workers: int) -> Ingestor:
        from ingest.pipeline import Ingestor

        return Ingestor(self.settings, self.engine, self.factory, self.embedder, parse_workers=parse_workers)

    def principal(self, name: str | None) -> Principal:
        """The CLI runs with the machine's (admin) access unless `--as USER` narrows it to that user's."""
        from rag.auth.principal import Principal
        from rag.users import principal_of

        if name is None:
            return Principal(name="cli", role="admin", via="cli")
        with self.factory() as session:
            return principal_of(session, name)

    def audit_log(self) -> HashChainAuditLog:
        from rag.audit import HashChainAuditLog, resolve_key

        try:
            return HashChainAuditLog(self.factory, resolve_key(self.settings))
        except RagError as exc:
            fail(str(exc))


def split_groups(value: str | None) -> list[str] | None:
    """`--groups a,b` as a sorted list; None when the option was not given."""
    if value is None:
        return None
    return sorted({g.strip() for g in value.split(",") if g.strip()})


class ProgressBar:
    """Files and chunks on a terminal; silent when stderr is not one (logs, CI, --json pipes)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bar = None

    def update(self, report: JobReport) -> None:
        if not self.enabled:
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=report.files_total, unit="file", desc="ingest", file=sys.stderr)
        self._bar.total = report.files_total
        self._bar.n = report.files_done
        self._bar.set_postfix(chunks=report.chunks_embedded, failed=report.files_failed, refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
