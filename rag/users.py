"""User administration: the use cases the CLI (`rag users ...`) and the admin API both call.

Each function changes one thing and commits it, so the two entry points cannot drift apart.

Separation of duties: auditors review what admins do, so an admin must not be able to make an
auditor, act on one, or hold an auditor's key. Auditor accounts and their keys are managed only by
the operator on the host (the CLI, `actor.via == "cli"`), never through the admin API. Every key
names who issued it, so a key an admin minted for someone else is traceable to that admin.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rag.auth.keys import create_key
from rag.auth.principal import ROLES, Principal
from rag.db.models import ApiKey, Group, User, utcnow
from rag.errors import InvalidRequestError, NotFoundError, PermissionDeniedError

OPERATOR = Principal(name="operator", role="admin", via="cli")  # the host's CLI: trusted with auditors


def _check_may_administer(actor: Principal, role: str) -> None:
    if role == "auditor" and actor.via != "cli":
        raise PermissionDeniedError(
            "auditor accounts and their keys are managed only by the operator on the host (rag users ...)"
        )


def groups_named(session: Session, names: list[str] | tuple[str, ...]) -> list[Group]:
    """The groups of these names (sorted), created on first mention; safe against a concurrent
    creator (workers and the API may name a new group at the same moment)."""
    wanted = sorted(set(names))
    found = {g.name: g for g in session.scalars(select(Group).where(Group.name.in_(wanted)))} if wanted else {}
    for name in wanted:
        if name in found:
            continue
        try:
            with session.begin_nested():
                group = Group(name=name)
                session.add(group)
                session.flush()
                found[name] = group
        except IntegrityError:
            found[name] = session.scalars(select(Group).where(Group.name == name)).one()
    return [found[n] for n in wanted]


def get_user(session: Session, name: str) -> User:
    user = session.scalars(select(User).where(User.name == name)).first()
    if user is None:
        raise NotFoundError(f"no user '{name}'")
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.name)))


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def create_user(
    session: Session,
    name: str,
    role: str,
    groups: list[str],
    *,
    actor: Principal,
    with_key: bool = False,
    key_label: str | None = None,
) -> tuple[User, str | None]:
    """A new user with groups; with `with_key`, also its first API key (plaintext returned once)."""
    if role not in ROLES:
        raise InvalidRequestError(f"role must be one of {', '.join(ROLES)}")
    _check_may_administer(actor, role)
    if session.scalars(select(User).where(User.name == name)).first() is not None:
        raise InvalidRequestError(f"user '{name}' exists already")
    user = User(name=name, role=role, disabled=False)
    user.groups = groups_named(session, groups)
    session.add(user)
    session.flush()
    plaintext = create_key(session, user, key_label, actor.name)[1] if with_key else None
    session.commit()
    return user, plaintext


def update_user(
    session: Session,
    name: str,
    *,
    actor: Principal,
    groups: list[str] | None = None,
    disabled: bool | None = None,
    role: str | None = None,
) -> User:
    """Replace groups, role and/or (dis)able: read per request, so it counts on the next one.
    Nobody changes their own role (an admin cannot lock the last admin out by mistake)."""
    user = get_user(session, name)
    _check_may_administer(actor, user.role)
    if role is not None and role != user.role:
        _check_may_administer(actor, role)
        if actor.user_id is not None and actor.user_id == user.id:
            raise PermissionDeniedError("you cannot change your own role; ask another admin")
        user.role = role
    if groups is not None:
        user.groups = groups_named(session, groups)
    if disabled is not None:
        user.disabled = disabled
    session.commit()
    return user


def issue_key(session: Session, name: str, label: str | None = None, *, actor: Principal) -> tuple[ApiKey, str]:
    """Another API key for user NAME; the plaintext exists only in the return value."""
    user = get_user(session, name)
    _check_may_administer(actor, user.role)
    key, plaintext = create_key(session, user, label, actor.name)
    session.commit()
    return key, plaintext


def revoke_key(session: Session, key_id: int, *, actor: Principal) -> ApiKey:
    """Refused from the next request on; revoking twice keeps the first time."""
    key = session.get(ApiKey, key_id)
    if key is None:
        raise NotFoundError(f"no API key {key_id}")
    _check_may_administer(actor, key.user.role)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
    session.commit()
    return key


def principal_of(session: Session, name: str, via: str = "cli") -> Principal:
    """What user NAME may do and read, for acting on their behalf (`--as USER`, route explain)."""
    user = get_user(session, name)
    if user.disabled:
        raise InvalidRequestError(f"user '{name}' is disabled")
    return Principal(
        name=user.name,
        role=user.role,
        groups=tuple(sorted(g.name for g in user.groups)),  # type: ignore[arg-type]
        via=via,
        user_id=user.id,
    )  # type: ignore[arg-type]
