"""`rag llm ...`: the packaged open-weight model."""

from __future__ import annotations

from pathlib import Path

import click

from cli.runtime import fail
from rag.errors import RagError


@click.group()
def llm() -> None:
    """The packaged open-weight model (SmolLM2-135M-Instruct)."""


@llm.command(name="export")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
def llm_export(out: Path) -> None:
    """Write the packaged model as a Hugging Face folder, e.g. for vLLM (compose mounts ./models)."""
    from rag.generators.embedded import convert_gguf, packaged_gguf

    if out.exists() and any(out.iterdir()):
        fail(f"{out} exists and is not empty")
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        convert_gguf(packaged_gguf(), out)
    except RagError as exc:
        fail(str(exc))
    click.echo(f"ok: {out}")
