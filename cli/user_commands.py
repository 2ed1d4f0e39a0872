"""`rag users ...`: users, their groups and API keys (the same use cases as the admin API)."""

from __future__ import annotations

import click

from cli.runtime import Runtime, fail, split_groups
from rag.auth.principal import ROLES
from rag.errors import RagError


@click.group()
def users() -> None:
    """Users (employee, admin, auditor), their groups and API keys."""


@users.command(name="add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--groups", default="", help="Comma-separated groups (what documents the user may read).")
@click.option("--no-key", is_flag=True, help="Do not create an API key now.")
def users_add(name: str, role: str, groups: str, no_key: bool) -> None:
    """Create a user and print its first API key (shown once, stored only as a hash)."""
    from rag import users as user_store

    rt = Runtime()
    try:
        with rt.factory() as session:
            _, plaintext = user_store.create_user(
                session, name, role, split_groups(groups) or [], actor=user_store.OPERATOR, with_key=not no_key
            )
    except RagError as exc:
        fail(str(exc))
    click.echo(f"created {role} '{name}'" + (f"; API key (shown once): {plaintext}" if plaintext else ""), err=True)
    if plaintext:
        click.echo(plaintext)


@users.command(name="list")
def users_list() -> None:
    from rag import users as user_store

    rt = Runtime()
    with rt.factory() as session:
        for user in user_store.list_users(session):
            state = " (disabled)" if user.disabled else ""
            click.echo(f"{user.name:<30} {user.role:<9} {','.join(sorted(g.name for g in user.groups))}{state}")


@users.command(name="set")
@click.argument("name")
@click.option("--groups", help="Replace the user's groups (comma-separated; '' for none).")
@click.option("--disable/--enable", default=None, help="Disable or re-enable the user.")
def users_set(name: str, groups: str | None, disable: bool | None) -> None:
    """Change a user's groups or disable them: effective on their next request."""
    from rag import users as user_store

    rt = Runtime()
    try:
        with rt.factory() as session:
            user_store.update_user(
                session, name, actor=user_store.OPERATOR, groups=split_groups(groups), disabled=disable
            )
    except RagError as exc:
        fail(str(exc))
    click.echo(f"ok: {name}")


@users.command(name="key")
@click.argument("name")
@click.option("--label", help="What the key is for.")
def users_key(name: str, label: str | None) -> None:
    """Create another API key for a user (printed once)."""
    from rag import users as user_store

    rt = Runtime()
    try:
        with rt.factory() as session:
            _, plaintext = user_store.issue_key(session, name, label, actor=user_store.OPERATOR)
    except RagError as exc:
        fail(str(exc))
    click.echo(plaintext)


@users.command(name="revoke-key")
@click.argument("key_id", type=int)
def users_revoke_key(key_id: int) -> None:
    """Revoke an API key by id (see GET /v1/keys)."""
    from rag import users as user_store

    rt = Runtime()
    try:
        with rt.factory() as session:
            user_store.revoke_key(session, key_id, actor=user_store.OPERATOR)
    except RagError as exc:
        fail(str(exc))
    click.echo(f"ok: key {key_id} revoked")
