"""The `rag` command group: each command group lives in its own module and is registered here."""

from __future__ import annotations

import logging

import click

from cli.audit_commands import audit
from cli.eval_commands import eval_group
from cli.ingest_commands import check, ingest, jobs, reindex, worker
from cli.model_commands import llm
from cli.models_commands import models, tune
from cli.query_commands import ask, route, search, serve
from cli.user_commands import users


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log progress details to stderr.")
def main(verbose: bool) -> None:
    """private-rag: private question answering over internal documents."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


for command in (
    ingest,
    worker,
    check,
    reindex,
    jobs,
    serve,
    ask,
    search,
    route,
    users,
    audit,
    llm,
    eval_group,
    models,
    tune,
):
    main.add_command(command)

if __name__ == "__main__":
    main()
