"""Any OpenAI-compatible chat server: vLLM in production, llama.cpp's server, a vendor gateway.

Retries only when the connection could not be made (nothing was sent, so retrying cannot
duplicate work); a read timeout or a server error is reported at once.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator

import httpx

from rag.errors import GeneratorTimeoutError, GeneratorUnavailableError
from rag.prompting import Prompt
from rag.types import Usage

log = logging.getLogger(__name__)


class OpenAICompatibleGenerator:
    backend = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        connect_timeout_s: float = 5.0,
        retries: int = 2,
        temperature: float = 0.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.retries = retries
        self.temperature = temperature
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            trust_env=False,
            transport=transport,
            follow_redirects=False,
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
        )

    def _body(self, prompt: Prompt, max_tokens: int) -> dict:
        return {
            "model": self.model,
            "messages": prompt.messages,
            "max_tokens": max_tokens,
            "temperature": self.temperature,
            "stream": True,
            "stream_options": {"include_usage": True},
        }

    def stream(self, prompt: Prompt, max_tokens: int, usage: Usage) -> Iterator[str]:
        body = self._body(prompt, max_tokens)
        for attempt in range(self.retries + 1):
            try:
                with self._client.stream("POST", "/chat/completions", json=body) as response:
                    if response.status_code >= 400:
                        response.read()
                        raise GeneratorUnavailableError(f"language model server answered HTTP {response.status_code}")
                    yield from self._events(response, usage)
                return
            except httpx.ConnectError as exc:
                if attempt == self.retries:
                    raise GeneratorUnavailableError("language model server unreachable") from exc
                log.warning("generator connect failed (attempt %d), retrying", attempt + 1)
                time.sleep(0.2 * 2**attempt)
            except httpx.TimeoutException as exc:
                raise GeneratorTimeoutError("language model server timed out") from exc
            except httpx.HTTPError as exc:
                raise GeneratorUnavailableError(f"language model server failed: {type(exc).__name__}") from exc

    @staticmethod
    def _events(response: httpx.Response, usage: Usage) -> Iterator[str]:
        for line in response.iter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            try:
                event = json.loads(data)
            except ValueError as exc:
                raise GeneratorUnavailableError("language model server sent malformed data") from exc
            if event.get("usage"):
                usage.prompt_tokens = int(event["usage"].get("prompt_tokens") or 0)
                usage.completion_tokens = int(event["usage"].get("completion_tokens") or 0)
            for choice in event.get("choices") or []:
                piece = (choice.get("delta") or {}).get("content")
                if piece:
                    yield piece

    def ready(self) -> bool:
        try:
            return self._client.get("/models", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False
