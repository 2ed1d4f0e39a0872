"""Offline, model-free replacements for the NLP helpers `unstructured` classifies text with.

`unstructured` tells titles from narrative text with sentence splitting, word tokenizing and a POS
tagger from the spaCy model `en_core_web_sm`, which it downloads at first use: impossible on an
air-gapped network, and PyPI only carries unverified re-uploads. Its heuristics only need sentence
and word counts and "does this contain a verb", so rules answer them, and several times faster
than a spaCy pipeline (parsing competes with the embedder for the same cores).
"""

from __future__ import annotations

import re
from functools import lru_cache

_AUXILIARIES = {
    "am",
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "being",
    "has",
    "have",
    "had",
    "do",
    "does",
    "did",
    "will",
    "would",
    "shall",
    "should",
    "can",
    "could",
    "may",
    "might",
    "must",
}
_COMMON_VERBS = set(
    """accept add agree allow apply approve arrive ask attend become begin believe bring build buy call
    cancel change check choose claim close come complete consider contact continue create cut decide
    deliver describe develop die do draw drink drive eat email enable ensure enter expect explain fall
    feel fill find finish follow forget get give go grow happen hear help hire hold include increase
    inform keep kill know learn leave let like live look lose love make manage mean meet move need
    note notify offer open own pay plan play prepare present prevent protect provide pull put raise
    reach read receive recommend reduce remain remember report request require review run save say
    see seem sell send serve set share show sign sit speak spend stand start stay stop store submit
    suggest support take talk teach tell think travel try turn understand update use wait walk want
    watch win work write""".split()
)
_VERB_FORM = re.compile(r"^[a-z]{3,}(ed|ing)$")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_WORD = re.compile(r"\w+(?:[-'’]\w+)*|[^\w\s]")


def verb_tag(word: str) -> str:
    """A Penn Treebank verb tag for verb-like words, "" otherwise."""
    lower = word.lower()
    if lower in _AUXILIARIES or lower.endswith(("'s", "'re", "'ve", "'ll", "'d", "'m")):
        return "VBZ"
    if lower in _COMMON_VERBS or (lower.endswith("s") and lower[:-1] in _COMMON_VERBS):
        return "VBP"
    if lower.endswith("ies") and lower[:-3] + "y" in _COMMON_VERBS:
        return "VBZ"
    if _VERB_FORM.match(lower):
        return "VBD" if lower.endswith("ed") else "VBG"
    return ""


@lru_cache(maxsize=1024)
def _sentences(text: str) -> tuple[str, ...]:
    return tuple(s for s in (p.strip() for p in _SENTENCE_END.split(text.strip())) if s)


def sent_tokenize(text: str) -> list[str]:
    return list(_sentences(str(text)))


@lru_cache(maxsize=1024)
def _words(text: str) -> tuple[str, ...]:
    return tuple(_WORD.findall(text))


def word_tokenize(text: str) -> list[str]:
    return list(_words(str(text)))


def pos_tag(text: str) -> list[tuple[str, str]]:
    return [(w, verb_tag(w) or "NN") for w in _words(str(text))]


def install() -> None:
    """Point `unstructured` at these helpers, wherever it imported them by name."""
    from unstructured.nlp import tokenize
    from unstructured.partition import text_type

    for module in (tokenize, text_type):
        module.sent_tokenize = sent_tokenize
        module.word_tokenize = word_tokenize
        module.pos_tag = pos_tag
    tokenize._load_spacy_model = _refuse_download


def _refuse_download():
    raise RuntimeError("offline: unstructured asked for a spaCy model; private-rag never downloads one")
