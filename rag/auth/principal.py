"""The authenticated caller and what each role may do (deny by default: unlisted means refused)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Role = Literal["employee", "admin", "auditor"]
ROLES: tuple[Role, ...] = ("employee", "admin", "auditor")

# capability -> roles holding it; routes declare the capability they need
CAPABILITIES: dict[str, frozenset[str]] = {
    "ask": frozenset({"employee", "admin"}),  # search, query, chat, models, own document listing
    "manage": frozenset({"admin"}),  # ingestion jobs, documents' access, users, keys, readiness, metrics
    "audit": frozenset({"auditor"}),  # audit records, export, verification
    "docs": frozenset({"employee", "admin", "auditor"}),  # the OpenAPI description
}


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    groups: tuple[str, ...] = field(default_factory=tuple)
    via: Literal["api_key", "oidc", "bootstrap", "cli", "session"] = "api_key"  # session: the web app
    user_id: int | None = None
    key_id: int | None = None  # the API key that made the request: every audit record names it

    def may(self, capability: str) -> bool:
        return self.role in CAPABILITIES.get(capability, frozenset())

    @property
    def sees_everything(self) -> bool:
        """Admins read every document, including those no group may read."""
        return self.role == "admin"
