"""An offline stand-in for the spaCy model `unstructured` would download at first use.

`unstructured` classifies text (title vs narrative) with sentence splitting and a POS tagger from
`en_core_web_sm`, which it fetches from the internet: impossible on an air-gapped network, and PyPI
only carries unverified re-uploads. A blank spaCy English pipeline gives rule-based tokens and
sentences; a small lexical component marks verb-like tokens, which is all the heuristics read.
"""

from __future__ import annotations

import re

import spacy
from spacy.language import Language
from spacy.tokens import Doc

_AUXILIARIES = {
    "am", "is", "are", "was", "were", "be", "been", "being", "has", "have", "had", "do", "does",
    "did", "will", "would", "shall", "should", "can", "could", "may", "might", "must", "'s", "'re",
    "'ve", "'ll", "'d", "'m",
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


def _verb_tag(word: str) -> str:
    lower = word.lower()
    if lower in _AUXILIARIES:
        return "VBZ"
    if lower in _COMMON_VERBS or (lower.endswith("s") and lower[:-1] in _COMMON_VERBS):
        return "VBP"
    if lower.endswith("ies") and lower[:-3] + "y" in _COMMON_VERBS:
        return "VBZ"
    if _VERB_FORM.match(lower):
        return "VBD" if lower.endswith("ed") else "VBG"
    return ""


@Language.component("lexical_verb_tagger")
def lexical_verb_tagger(doc: Doc) -> Doc:
    for token in doc:
        tag = _verb_tag(token.text)
        if tag:
            token.tag_ = tag
    return doc


def build_pipeline() -> Language:
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.add_pipe("lexical_verb_tagger")
    return nlp


def install() -> None:
    """Point `unstructured` at the offline pipeline; it never reaches for a download afterwards."""
    from unstructured.nlp import tokenize

    nlp = build_pipeline()
    tokenize._load_spacy_model = lambda: nlp
    tokenize._get_nlp.cache_clear()
