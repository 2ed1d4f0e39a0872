"""No language model: answer with the passages' sentences that best cover the question, cited.

Used when an admin wants no LLM at all, and as the fallback when the model server is down (the
response then says so). It cannot invent anything: every word comes from a passage.
"""

from __future__ import annotations

from collections.abc import Iterator

from rag.lexical import content_words, split_sentences
from rag.prompting import NEUTRALISED, NOT_FOUND, Prompt
from rag.types import Usage


class ExtractiveGenerator:
    backend = "extractive"
    model = "extractive"

    def __init__(self, max_sentences: int = 2, min_coverage: float = 0.34) -> None:
        self.max_sentences = max_sentences
        self.min_coverage = min_coverage

    def select(self, prompt: Prompt) -> list[tuple[int, str]]:
        """(passage number, sentence) pairs, best first."""
        wanted = set(content_words(prompt.question))
        if not wanted:
            return []
        scored = []
        # the neutralised texts: a sentence holding an instruction or a fake turn is never quoted
        texts = prompt.texts or [p.text for p in prompt.passages]
        for n, text in enumerate(texts, 1):
            for position, sentence in enumerate(split_sentences(text)):
                words = set(content_words(sentence))
                if len(words) < 3 or NEUTRALISED in sentence:
                    continue
                coverage = len(wanted & words) / len(wanted)
                # earlier passages rank higher in retrieval; break ties towards them and towards lead sentences
                scored.append((coverage - 0.01 * n - 0.001 * position, coverage, n, " ".join(sentence.split())))
        scored.sort(key=lambda item: -item[0])
        picked: list[tuple[int, str]] = []
        for _, coverage, n, sentence in scored:
            if coverage < self.min_coverage or len(picked) == self.max_sentences:
                break
            if all(sentence != s for _, s in picked):
                picked.append((n, sentence))
        return picked

    def stream(self, prompt: Prompt, max_tokens: int, usage: Usage) -> Iterator[str]:
        picked = self.select(prompt)
        if not picked:
            yield NOT_FOUND
            return
        for i, (n, sentence) in enumerate(picked):
            end = sentence[-1] if sentence[-1] in ".!?" else "."
            body = sentence[:-1] if sentence[-1] in ".!?" else sentence
            yield ("" if i == 0 else " ") + f"{body} [{n}]{end}"

    def ready(self) -> bool:
        return True
