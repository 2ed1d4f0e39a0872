"""Detectors of sensitive data. Each looks at the obfuscation-undoing views of a text and reports
what kind of data it found, never the data itself (results end up in responses and audit details).

Checksums keep the number detectors precise (Luhn for cards, mod-97 for IBANs, SSN structure);
everything else errs on the side of a hit: a false hit only keeps a query on the local model.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from rag.sensitivity.views import TextViews

_DIGITS_6 = re.compile(r"\d{6}")
_DIGITS_7 = re.compile(r"\d{7}")


@dataclass(frozen=True)
class Hit:
    detector: str  # which detector, e.g. "email"
    kind: str  # what it matched, e.g. "aws_access_key"; never the matched text


@runtime_checkable
class Detector(Protocol):
    name: str

    def find(self, views: TextViews) -> list[Hit]:
        """Every kind of sensitive data in the text (an empty list when there is none)."""


class EmailDetector:
    name = "email"
    _pattern = re.compile(r"[A-Za-z0-9._%+'-]+\s*@\s*[A-Za-z0-9-]+(?:\s*\.\s*[A-Za-z0-9-]+)*\s*\.\s*[A-Za-z]{2,}")

    def find(self, views: TextViews) -> list[Hit]:
        texts = [v for v in (views.text, views.deobfuscated) if "@" in v]  # every e-mail view has one
        return [Hit(self.name, "email")] if any(self._pattern.search(v) for v in texts) else []


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


class CreditCardDetector:
    name = "credit_card"
    _candidate = re.compile(r"(?<!\d)\d{13,19}(?!\d)")

    def find(self, views: TextViews) -> list[Hit]:
        for match in self._candidate.finditer(views.compact_digits):
            digits = match.group()
            if luhn_valid(digits) and len(set(digits)) > 1:
                return [Hit(self.name, "card_number")]
        return []


# IBAN length per country (ISO 13616 registry): a candidate must have its country's exact length
_IBAN_LENGTHS = {
    "AD": 24,
    "AE": 23,
    "AL": 28,
    "AT": 20,
    "AZ": 28,
    "BA": 20,
    "BE": 16,
    "BG": 22,
    "BH": 22,
    "BR": 29,
    "CH": 21,
    "CR": 22,
    "CY": 28,
    "CZ": 24,
    "DE": 22,
    "DK": 18,
    "DO": 28,
    "EE": 20,
    "EG": 29,
    "ES": 24,
    "FI": 18,
    "FO": 18,
    "FR": 27,
    "GB": 22,
    "GE": 22,
    "GI": 23,
    "GL": 18,
    "GR": 27,
    "GT": 28,
    "HR": 21,
    "HU": 28,
    "IE": 22,
    "IL": 23,
    "IS": 26,
    "IT": 27,
    "JO": 30,
    "KW": 30,
    "KZ": 20,
    "LB": 28,
    "LI": 21,
    "LT": 20,
    "LU": 20,
    "LV": 21,
    "MC": 27,
    "MD": 24,
    "ME": 22,
    "MK": 19,
    "MR": 27,
    "MT": 31,
    "MU": 30,
    "NL": 18,
    "NO": 15,
    "PK": 24,
    "PL": 28,
    "PS": 29,
    "PT": 25,
    "QA": 29,
    "RO": 24,
    "RS": 22,
    "SA": 24,
    "SE": 24,
    "SI": 19,
    "SK": 24,
    "SM": 27,
    "TN": 24,
    "TR": 26,
    "UA": 29,
    "VG": 24,
    "XK": 20,
}


class IbanDetector:
    """Country code, its exact IBAN length, a mostly numeric account part and the mod-97 check."""

    name = "iban"
    _candidate = re.compile(r"\b([A-Za-z]{2})(\d{2})((?:[ \-]?[A-Za-z0-9]){11,30})")

    @staticmethod
    def valid(iban: str) -> bool:
        if _IBAN_LENGTHS.get(iban[:2]) != len(iban):
            return False
        bban = iban[4:]
        if sum(ch.isdigit() for ch in bban) < 0.6 * len(bban):
            return False
        number = "".join(str(int(ch, 36)) for ch in iban[4:] + iban[:4])
        return int(number) % 97 == 1

    def find(self, views: TextViews) -> list[Hit]:
        for text in (views.text, views.deobfuscated):
            for match in self._candidate.finditer(text):
                country = match.group(1).upper()
                length = _IBAN_LENGTHS.get(country)
                if length is None:
                    continue
                rest = re.sub(r"[ \-]", "", match.group(3)).upper()
                if self.valid(country + match.group(2) + rest[: length - 4]):
                    return [Hit(self.name, "iban")]
        return []


class PhoneDetector:
    """International (+CC ...) and North American numbers, and any 7-15 digit run next to a word
    that says it is a phone number."""

    name = "phone"
    _international = re.compile(
        r"(?<![\w+])(?:\+|00)[1-9]\d{0,3}[\s.\-/]*(?:\(\d{1,4}\)[\s.\-/]*)?\d(?:[\s.\-/]*\d){5,13}(?!\d)"
    )
    _north_american = re.compile(r"(?<!\d)(?:1[\s.\-]*)?\(?[2-9]\d{2}\)?[\s.\-]*[2-9]\d{2}[\s.\-]*\d{4}(?!\d)")
    _cue = re.compile(
        r"\b(?:phone|tel|telephone|mobile|cell|fax|call|ring|text|whatsapp|sms|dial)\b"
        r"[^\d\n]{0,25}(\+?\d[\d\s().\-/]{5,22}\d)",
        re.IGNORECASE,
    )

    def find(self, views: TextViews) -> list[Hit]:
        if not _DIGITS_7.search(views.compact_digits):  # every phone number has 7+ digits in a row there
            return []
        for text in (views.text, views.deobfuscated):
            if self._international.search(text) or self._north_american.search(text):
                return [Hit(self.name, "phone_number")]
            for match in self._cue.finditer(text):
                if 7 <= sum(ch.isdigit() for ch in match.group(1)) <= 15:
                    return [Hit(self.name, "phone_number")]
        return []


class NationalIdDetector:
    """US social security numbers (structure-checked), UK National Insurance numbers and Canadian
    social insurance numbers (Luhn); any nine digits next to 'SSN' or 'social security'."""

    name = "national_id"
    _ssn = re.compile(r"(?<![\d-])(?!000|666|9\d\d)(\d{3})([ \-.]?)(?!00)\d{2}\2(?!0000)\d{4}(?![\d-])")
    _ssn_cue = re.compile(
        r"\b(?:ssn|social\s+security|tax\s*id|tin|itin|sin|national\s+id)\b\D{0,20}(\d{9})(?!\d)", re.IGNORECASE
    )
    # any two letters (the issued prefixes change; 'QQ' is the published example): shape over registry
    _nino = re.compile(r"\b[A-Z]{2}\s?\d{2}\s?\d{2}\s?\d{2}\s?[A-D]\b")
    _sin = re.compile(r"(?<!\d)\d{3}[ \-]\d{3}[ \-]\d{3}(?!\d)")

    def find(self, views: TextViews) -> list[Hit]:
        if not _DIGITS_6.search(views.compact_digits):  # every id here has 6+ digits in a row there
            return []
        hits = []
        for text in (views.text, views.deobfuscated):
            for match in self._ssn.finditer(text):
                # nine bare digits are too ambiguous on their own; separators make it an SSN's shape
                if match.group(2):
                    hits.append(Hit(self.name, "us_ssn"))
                    break
            if self._ssn_cue.search(views.compact_digits) or self._ssn_cue.search(text):
                hits.append(Hit(self.name, "us_ssn"))
            if self._nino.search(text.upper()):
                hits.append(Hit(self.name, "uk_nino"))
            for match in self._sin.finditer(text):
                if luhn_valid(re.sub(r"\D", "", match.group())):
                    hits.append(Hit(self.name, "ca_sin"))
                    break
        return sorted(set(hits), key=lambda h: h.kind)


class IpAddressDetector:
    name = "ip_address"
    _v4 = re.compile(r"(?<![\d.])(\d{1,3})\s*\.\s*(\d{1,3})\s*\.\s*(\d{1,3})\s*\.\s*(\d{1,3})(?![\d]|\.\d)")
    _v6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?:%\w+)?(?![\w:])")

    def find(self, views: TextViews) -> list[Hit]:
        for text in (views.text, views.deobfuscated):
            for match in self._v4.finditer(text):
                if all(int(part) <= 255 for part in match.groups()):
                    return [Hit(self.name, "ipv4")]
            for match in self._v6.finditer(text):
                candidate = match.group().split("%")[0]
                if candidate.count(":") >= 2 and any(c.isalnum() for c in candidate):
                    try:
                        ipaddress.IPv6Address(candidate)
                    except ValueError:
                        continue
                    return [Hit(self.name, "ipv6")]
        return []


def shannon_entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


class SecretDetector:
    """Vendor key formats, private keys, JWTs, credentials in URLs and assignments, and long
    random-looking tokens (high entropy, mixed character classes)."""

    name = "secret"
    _patterns = [
        ("private_key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----|PuTTY-User-Key-File")),
        ("aws_access_key", re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[0-9A-Z]{16}\b")),
        ("openai_key", re.compile(r"\bsk-(?:proj-|ant-|live-|test-)?[A-Za-z0-9_\-]{16,}")),
        ("github_token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})")),
        ("gitlab_token", re.compile(r"\bglpat-[A-Za-z0-9_\-]{20,}")),
        ("slack_token", re.compile(r"\bxox[abposr]-[A-Za-z0-9\-]{10,}")),
        ("google_api_key", re.compile(r"\bAIza[0-9A-Za-z_\-]{35}\b")),
        ("stripe_key", re.compile(r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}")),
        ("private_rag_key", re.compile(r"\brag_[A-Za-z0-9_\-]{20,}")),
        ("jwt", re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}")),
        ("url_credentials", re.compile(r"\b[a-z][a-z0-9+.\-]*://[^\s:/@]+:[^\s@/]+@[^\s]+", re.IGNORECASE)),
        (
            "credential_assignment",
            re.compile(
                r"\b(?:password|passwd|pwd|passphrase|secret|api[_\- ]?key|access[_\- ]?key|auth[_\- ]?token|"
                r"client[_\- ]?secret|bearer|token)\b\s*(?:is|=|:|:=|=>)\s*['\"]?[^\s'\"]{6,}",
                re.IGNORECASE,
            ),
        ),
        ("authorization_header", re.compile(r"\bAuthorization:\s*(?:Bearer|Basic|Token)\s+\S{8,}", re.IGNORECASE)),
    ]
    _token = re.compile(r"[A-Za-z0-9+/_\-=]{24,}")

    @staticmethod
    def random_looking(token: str) -> bool:
        classes = sum(bool(re.search(p, token)) for p in (r"[a-z]", r"[A-Z]", r"\d"))
        return (
            classes >= 3
            and shannon_entropy(token) >= 3.5
            or (len(token) >= 32 and re.fullmatch(r"[0-9a-f]+", token) is not None and shannon_entropy(token) >= 3.0)
        )

    def find(self, views: TextViews) -> list[Hit]:
        hits = {Hit(self.name, kind) for kind, pattern in self._patterns if pattern.search(views.text)}
        if any(self.random_looking(m.group()) for m in self._token.finditer(views.text)):
            hits.add(Hit(self.name, "high_entropy_token"))
        return sorted(hits, key=lambda h: h.kind)


class TermDetector:
    """Admin-defined terms (project code names, customer names) and regular expressions. Terms match
    whole words case-insensitively, and also with separators or spaces removed ('Blue-Bird')."""

    name = "term"

    def __init__(self, terms: Iterable[str] = (), patterns: Iterable[str] = ()) -> None:
        terms = [t.strip() for t in terms if t and t.strip()]
        self._words = [re.compile(r"(?<!\w)" + re.escape(t) + r"(?!\w)", re.IGNORECASE) for t in terms]
        self._compact = [c for c in (re.sub(r"[^0-9a-z]", "", t.casefold()) for t in terms) if len(c) >= 4]
        self._patterns = [re.compile(p) for p in patterns]

    def __bool__(self) -> bool:
        return bool(self._words or self._patterns)

    def find(self, views: TextViews) -> list[Hit]:
        hits = []
        texts = (views.text, views.deobfuscated)
        if any(w.search(t) for w in self._words for t in texts) or any(c in views.compact_words for c in self._compact):
            hits.append(Hit(self.name, "admin_term"))
        if any(p.search(t) for p in self._patterns for t in texts):
            hits.append(Hit(self.name, "admin_pattern"))
        return hits


# Common given names (the largest share of people mentioned in questions); with a capitalised
# word after them, or a title before a capitalised word, the text very likely names a person.
_GIVEN_NAMES = frozenset(
    """
aaron abigail adam adrian ahmed aisha alan albert alejandro alex alexander alexandra alice alicia
alison amanda amber amelia amir amy ana andrea andrew andy angela anita ann anna anne anthony antonio
arjun arthur ashley barbara ben benjamin beth betty bill bob brandon brenda brian bruce carl carla
carlos carol caroline catherine charles charlie charlotte chen chris christian christina christine
christopher claire daniel danielle david deborah debra dennis diana diane donald donna dorothy douglas
dylan edward elena elizabeth ella emily emma eric erin ethan eva evelyn fatima frank gabriel gary george
gerald giulia grace greg gregory hannah harold harry heather helen henry holly ian isabella jack jacob
james jane janet jason jean jeffrey jennifer jeremy jerry jessica jim joan joe john jonathan jose joseph
joshua joyce juan judith judy julia julie justin karen kate katherine kathleen kathy keith kelly kenneth
kevin kim kyle larry laura lauren lawrence linda lisa liu logan lucas lucy luis madison maria marie
mark martha martin mary matthew megan melissa michael michelle mike mohammed muhammad nancy natalie
nathan nicholas nicole noah olga olivia oliver pamela patricia patrick paul peter philip priya rachel
rahul ralph randy raymond rebecca richard rita robert roger ronald rose roy ruth ryan samantha samuel
sandra sara sarah scott sean sharon shirley sofia sophia stephanie stephen steve steven susan tanya
teresa terry thomas timothy tom tyler victoria vincent walter wang wayne wei william yuki zachary zoe
""".split()
)
_SURNAME = r"[A-Z](?:['’][A-Z])?[^\W\d_]+"
_TITLE_NAME = re.compile(r"\b(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sir|Dame|Herr|Frau|Mme|Mlle)\.?\s+" + _SURNAME)
_FIRST_LAST = re.compile(r"\b([A-Z][a-z]+)(?=\s+(?:[A-Z]\.\s+)?" + _SURNAME + ")")


class PersonNameDetector:
    """Person names: a local spaCy NER model when one is configured (RAG_ESCALATION__NER_MODEL_PATH),
    otherwise titles ('Dr Smith') and common given names followed by a surname ('Maria Lopez')."""

    name = "person_name"

    def __init__(self, ner_model_path: Path | None = None) -> None:
        self._nlp = None
        if ner_model_path is not None:
            import spacy  # only when configured: loads from the local folder, never downloads

            self._nlp = spacy.load(ner_model_path)

    def find(self, views: TextViews) -> list[Hit]:
        text = views.text
        if self._nlp is not None and any(ent.label_ == "PERSON" for ent in self._nlp(text).ents):
            return [Hit(self.name, "person_ner")]
        if _TITLE_NAME.search(text):
            return [Hit(self.name, "titled_name")]
        for match in _FIRST_LAST.finditer(text):
            if match.group(1).lower() in _GIVEN_NAMES:
                return [Hit(self.name, "given_and_family_name")]
        return []


def default_detectors(
    *, terms: Iterable[str] = (), patterns: Iterable[str] = (), ner_model_path: Path | None = None
) -> list[Detector]:
    detectors: list[Detector] = [
        EmailDetector(),
        PhoneDetector(),
        CreditCardDetector(),
        IbanDetector(),
        NationalIdDetector(),
        IpAddressDetector(),
        SecretDetector(),
        PersonNameDetector(ner_model_path),
    ]
    term_detector = TermDetector(terms, patterns)
    if term_detector:
        detectors.append(term_detector)
    return detectors
