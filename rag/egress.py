"""The only way a request leaves for a proprietary model, with the last line of defence.

`GuardedTransport` sits under the external client's HTTP stack: it refuses any destination but
the configured endpoint (scheme, host, port and path prefix; redirects are never followed) and
scans every message of the outbound body once more right before it is sent. A hit, an unreadable
body or a foreign destination raises EgressBlockedError and nothing is sent.
"""

from __future__ import annotations

import json
import logging

import httpx

from rag.errors import DetectionError, EgressBlockedError
from rag.generators.openai_compat import OpenAICompatibleGenerator
from rag.sensitivity import Scanner
from rag.settings import EscalationSettings

log = logging.getLogger(__name__)


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


class GuardedTransport(httpx.BaseTransport):
    def __init__(self, base_url: str, scanner: Scanner, inner: httpx.BaseTransport | None = None) -> None:
        allowed = httpx.URL(base_url)
        self._origin = (allowed.scheme, allowed.host, allowed.port)
        self._path = allowed.path.rstrip("/") + "/"
        self.scanner = scanner
        self.inner = inner or httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if (url.scheme, url.host, url.port) != self._origin or not url.path.startswith(self._path):
            raise EgressBlockedError(f"destination {url.scheme}://{url.host} is not the configured escalation endpoint")
        try:
            body = json.loads(request.read() or b"{}")
            hits = self.scanner.scan(_strings(body.get("messages", [])) + _strings(body.get("model", "")))
        except (ValueError, AttributeError, DetectionError) as exc:
            raise EgressBlockedError(f"outbound body could not be checked ({type(exc).__name__})") from exc
        if hits:
            kinds = ", ".join(sorted({f"{h.detector}:{h.kind}" for h in hits}))
            log.warning("outbound request blocked by the final scan (%s)", kinds)
            raise EgressBlockedError(f"outbound scan found {kinds}")
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def external_generator(
    policy: EscalationSettings, scanner: Scanner, inner: httpx.BaseTransport | None = None
) -> OpenAICompatibleGenerator:
    generator = OpenAICompatibleGenerator(
        policy.base_url,
        policy.model,
        api_key=policy.vendor_key(),
        timeout_s=policy.timeout_s,
        connect_timeout_s=policy.connect_timeout_s,
        retries=1,
        transport=GuardedTransport(policy.base_url, scanner, inner),
    )
    generator.backend = "external"
    return generator
