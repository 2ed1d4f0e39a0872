"""Groups and sensitivity label of documents: from the job (`--groups`, `--label`, the admin API)
and from per-folder policy files (`.rag-access.yaml`), applied to the documents a job touches.

A policy file holds `groups: [..]` and/or `label: ..`; it applies to its folder and every
subfolder, a deeper file overriding the keys it sets. Policy files take precedence over the job's
options (they live with the documents they describe). A policy file that cannot be read or is
invalid fails every document beneath it: access is never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from rag.db.models import Document, Group
from rag.documents import set_access
from rag.types import LABELS

POLICY_FILE = ".rag-access.yaml"


@dataclass(frozen=True)
class Policy:
    groups: tuple[str, ...] | None = None
    label: str | None = None
    error: str | None = None


def read_policy(path: Path) -> Policy:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        return Policy(error=f"unreadable {POLICY_FILE} in {path.parent.name or '/'}: {type(exc).__name__}")
    if not isinstance(data, dict) or set(data) - {"groups", "label"}:
        return Policy(error=f"invalid {POLICY_FILE} in {path.parent.name}: only 'groups' and 'label' are allowed")
    groups = data.get("groups")
    if groups is not None:
        if isinstance(groups, str):
            groups = [groups]
        if not isinstance(groups, list) or not all(isinstance(g, str) and g.strip() for g in groups):
            return Policy(error=f"invalid {POLICY_FILE} in {path.parent.name}: 'groups' must be a list of names")
        groups = tuple(sorted({g.strip() for g in groups}))
    label = data.get("label")
    if label is not None and label not in LABELS:
        return Policy(error=f"invalid {POLICY_FILE} in {path.parent.name}: 'label' must be one of {', '.join(LABELS)}")
    return Policy(groups=groups, label=label)


class DocMeta:
    """What each document's groups and label should be; None means keep what it already has."""

    def __init__(self, groups: list[str] | None, label: str | None, root: Path | None = None) -> None:
        self.groups = tuple(sorted(set(groups))) if groups is not None else None
        self.label = label
        self.root = root.resolve() if root is not None else None
        self._groups_cache: dict[tuple[str, ...], Group] = {}
        self.has_policies = self.root is not None and self.root.is_dir() and any(self.root.rglob(POLICY_FILE))

    @property
    def changes_anything(self) -> bool:
        return self.groups is not None or self.label is not None or self.has_policies

    @lru_cache(maxsize=4096)  # noqa: B019 - one DocMeta per job
    def _folder_policy(self, folder: Path) -> Policy:
        parent = Policy() if folder == self.root or folder.parent == folder else self._folder_policy(folder.parent)
        own = folder / POLICY_FILE
        if parent.error or not own.is_file():
            return parent
        mine = read_policy(own)
        if mine.error:
            return mine
        return Policy(
            groups=mine.groups if mine.groups is not None else parent.groups, label=mine.label or parent.label
        )

    def for_path(self, path: str) -> Policy:
        """Groups and label for one document: its folders' policies, else the job's options."""
        policy = Policy()
        if self.has_policies:
            folder = Path(path).parent
            if self.root == folder or self.root in folder.parents:
                policy = self._folder_policy(folder)
        if policy.error:
            return policy
        return Policy(
            groups=policy.groups if policy.groups is not None else self.groups, label=policy.label or self.label
        )

    def apply(self, session: Session, doc: Document) -> None:
        policy = self.for_path(doc.path)
        set_access(session, doc, groups=policy.groups, label=policy.label)

    def apply_to_paths(self, session: Session, collection_id: int, paths: list[str]) -> None:
        if not paths:
            return
        for doc in session.scalars(
            select(Document).where(Document.collection_id == collection_id, Document.path.in_(paths))
        ):
            self.apply(session, doc)
