"""The escalation router: may this query go to a proprietary model, and with which passages?

Escalation is off unless enabled, and then allowed only when every rule holds: the user may
escalate, the question (and conversation) has no detector hit, every passage's label is looked
up fresh and known, the best passage is not above the allowed label (the answer would live in
material that may not leave), and enough passages remain after withholding those above the label
or with detector hits. Anything unexpected - a detector error, timeout or odd result, a missing
label, any exception here - keeps the query local: the router fails closed.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import replace
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from rag.auth.principal import Principal
from rag.errors import DetectionError
from rag.labels import at_or_below
from rag.sensitivity import Scanner
from rag.settings import EscalationSettings
from rag.types import DISABLED, Passage, RouteDecision

log = logging.getLogger(__name__)


class LabelLookup(Protocol):
    def labels(self, document_ids: Iterable[int]) -> dict[int, str]:
        """Current label of each document (documents may be relabelled after retrieval)."""


class DatabaseLabels:
    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.factory = factory

    def labels(self, document_ids: Iterable[int]) -> dict[int, str]:
        from rag.db.models import Document

        ids = sorted(set(document_ids))
        if not ids:
            return {}
        with self.factory() as session:
            return dict(session.execute(select(Document.id, Document.label).where(Document.id.in_(ids))).all())


class PolicyRouter:
    """The rag.protocols.Router of RAG_ESCALATION__*: every rule must hold, anything odd stays local."""

    def __init__(self, policy: EscalationSettings, scanner: Scanner, labels: LabelLookup) -> None:
        self.policy = policy
        self.scanner = scanner
        self.label_lookup = labels

    @property
    def enabled(self) -> bool:
        return self.policy.enabled

    def decide(
        self,
        question: str,
        passages: list[Passage],
        principal: Principal | None,
        history: list[dict[str, str]] | None = None,
    ) -> RouteDecision:
        if not self.policy.enabled:
            return DISABLED
        try:
            return self._decide(question, passages, principal, history or [])
        except DetectionError as exc:
            return RouteDecision("local", f"sensitivity scan failed ({exc}); kept local", "detector_error")
        except Exception as exc:  # noqa: BLE001 - fail closed on anything unexpected
            log.warning("router failed (%s); keeping the query local", type(exc).__name__)
            return RouteDecision("local", f"router error ({type(exc).__name__}); kept local", "router_error")

    def permitted(self, principal: Principal | None) -> bool:
        groups = set(self.policy.groups)
        return principal is not None and principal.may("ask") and bool("*" in groups or groups & set(principal.groups))

    def _decide(
        self, question: str, passages: list[Passage], principal: Principal | None, history: list[dict[str, str]]
    ) -> RouteDecision:
        if not self.permitted(principal):
            return RouteDecision("local", "user is not in a group allowed to escalate", "not_permitted")
        hits = self.scanner.scan([question, *(m.get("content", "") for m in history)])
        if hits:
            kinds = tuple(f"{h.detector}:{h.kind}" for h in hits)
            return RouteDecision(
                "local", "question contains sensitive data: " + ", ".join(kinds), "question_sensitive", detectors=kinds
            )
        current = self.label_lookup.labels(p.document_id for p in passages)
        if not isinstance(current, dict):
            return RouteDecision("local", "label lookup returned no labels; kept local", "label_error")
        labels: Counter[str] = Counter()
        withheld: Counter[str] = Counter()
        sendable: list[Passage] = []
        maximum = self.policy.max_label
        for rank, passage in enumerate(passages):
            label = current.get(passage.document_id)
            try:
                allowed = at_or_below(label, maximum)
            except ValueError:
                return RouteDecision(
                    "local",
                    f"passage without a known label ({label!r}); kept local",
                    "label_error",
                    labels=dict(labels),
                )
            labels[label] += 1
            if not allowed:
                withheld[f"label_above_{maximum}"] += 1
                if rank == 0:
                    return RouteDecision(
                        "local",
                        f"the best passage is labelled {label} (above {maximum}): the answer lies in "
                        "material that may not leave",
                        "context_sensitive",
                        labels=dict(labels),
                        withheld=dict(withheld),
                    )
                continue
            found = self.scanner.scan([passage.text, passage.path.rsplit("/", 1)[-1], passage.title or ""])
            if found:
                withheld["sensitive_data"] += 1
                continue
            sendable.append(passage)
        decision = RouteDecision(
            "local", "", "", labels=dict(labels), withheld=dict(withheld), send=tuple(sendable), model=self.policy.model
        )
        if not passages:
            if "no_context" in self.policy.when:
                return replace(
                    decision,
                    target="external",
                    rule="no_context",
                    reason="no internal passage for this question: general knowledge",
                )
            return decision.stay_local("no passages retrieved", "no_context")
        if len(sendable) < self.policy.min_passages:
            return decision.stay_local(
                f"{len(sendable)} passage(s) may be sent, {self.policy.min_passages} needed", "context_sensitive"
            )
        reason = f"question clean; {len(sendable)} passage(s) at or below {maximum}"
        if "eligible" in self.policy.when:
            return replace(decision, target="external", rule="eligible", reason=reason)
        if "local_declines" in self.policy.when:
            return replace(
                decision,
                reason=reason + "; escalated only if the local model declines",
                rule="local_first",
                escalate_on_decline=True,
            )
        return decision.stay_local("no escalation mode applies to this query", "no_mode")


def build_router(policy: EscalationSettings, factory: sessionmaker[Session]) -> PolicyRouter:
    from rag.sensitivity import default_detectors

    terms, patterns = list(policy.terms), list(policy.patterns)
    if policy.terms_file is not None:
        import yaml

        data = yaml.safe_load(policy.terms_file.read_text(encoding="utf-8")) or {}
        terms += [str(t) for t in data.get("terms", [])]
        patterns += [str(p) for p in data.get("patterns", [])]
    detectors = default_detectors(terms=terms, patterns=patterns, ner_model_path=policy.ner_model_path)
    return PolicyRouter(policy, Scanner(detectors, policy.detector_timeout_s), DatabaseLabels(factory))
