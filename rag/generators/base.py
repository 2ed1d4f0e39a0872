"""The Generator seam: every backend turns a Prompt into text, whole or streamed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Protocol, runtime_checkable

from rag.prompting import Prompt


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


@runtime_checkable
class Generator(Protocol):
    backend: str  # "openai", "embedded" or "extractive"
    model: str  # the model that produced the words, as its server names it

    def stream(self, prompt: Prompt, max_tokens: int, usage: Usage) -> Iterator[str]:
        """Text pieces as they are produced; fills `usage` when done.

        Raises GeneratorUnavailableError (cannot reach or failed) or GeneratorTimeoutError.
        """

    def ready(self) -> bool:
        """Cheap liveness check for /readyz."""


def complete(generator: Generator, prompt: Prompt, max_tokens: int) -> tuple[str, Usage]:
    usage = Usage()
    text = "".join(generator.stream(prompt, max_tokens, usage))
    return text, usage
