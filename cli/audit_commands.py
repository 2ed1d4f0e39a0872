"""`rag audit ...`: verify, checkpoint and archive the tamper-evident audit log (run on the host)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from cli.runtime import Runtime, fail
from rag.audit import read_checkpoint
from rag.errors import RagError


@click.group()
def audit() -> None:
    """The tamper-evident audit log."""


@audit.command(name="verify")
@click.option(
    "--checkpoint",
    "checkpoint_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A checkpoint from `rag audit checkpoint`: also detects truncation and rewrites "
    "(default: RAG_AUDIT_CHECKPOINT_FILE, when set).",
)
@click.option("--json", "as_json", is_flag=True)
def audit_verify(checkpoint_file: Path | None, as_json: bool) -> None:
    """Check the whole chain; exit 1 naming the first bad record."""
    rt = Runtime()
    checkpoint_file = checkpoint_file or rt.settings.audit_checkpoint_file
    checkpoint = None
    if checkpoint_file is not None:
        try:
            checkpoint = read_checkpoint(checkpoint_file)
        except RagError as exc:
            fail(str(exc), code=1)
    result = rt.audit_log().verify(checkpoint)
    if as_json:
        click.echo(json.dumps(result.as_json()))
    elif result.ok:
        click.echo(f"ok: {result.records} records, head {result.head_seq} {result.head_hash}")
    else:
        click.echo(f"error: record {result.first_bad_seq}: {result.reason}", err=True)
    sys.exit(0 if result.ok else 1)


@audit.command(name="checkpoint")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write it (default: RAG_AUDIT_CHECKPOINT_FILE); the file is replaced atomically.",
)
def audit_checkpoint(out: Path | None) -> None:
    """Write the signed (size, head hash) of the log to FILE; keep it outside the database."""
    rt = Runtime()
    out = out or rt.settings.audit_checkpoint_file
    if out is None:
        fail("say where: --out FILE, or set RAG_AUDIT_CHECKPOINT_FILE", code=2)
    try:
        checkpoint = rt.audit_log().write_checkpoint(out)
    except RagError as exc:
        fail(str(exc), code=1)
    click.echo(f"ok: checkpoint at record {checkpoint['head_seq']} written to {out}")


@audit.command(name="archive")
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="JSON-lines file to create."
)
@click.option("--before", help="ISO time; default: now minus RAG_AUDIT_RETENTION_DAYS.")
def audit_archive(out: Path, before: str | None) -> None:
    """Move records older than the retention period to FILE; the archival is itself recorded.
    Run it as the database owner (the service's own role cannot delete audit rows)."""
    import datetime as dt

    rt = Runtime()
    if before is None:
        if not rt.settings.audit_retention_days:
            fail("nothing to archive: give --before or set RAG_AUDIT_RETENTION_DAYS")
        before = (dt.datetime.now(dt.UTC) - dt.timedelta(days=rt.settings.audit_retention_days)).isoformat()
    if out.exists():
        fail(f"{out} exists")
    try:
        summary = rt.audit_log().archive(before, out)
    except RagError as exc:
        fail(str(exc), code=1)
    click.echo(json.dumps(summary))
