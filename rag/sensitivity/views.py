"""Views of a text that undo common obfuscations, so one detector pattern sees every spelling.

People paste "jane [at] corp [dot] com", "4111 1111-1111 1111", full-width digits, zero-width
spaces, Cyrillic look-alike letters or digits spelled out. Detectors look at all views; a hit in
any of them counts (the router fails closed, so a false hit only keeps a query local).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cached_property

_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0]"
)
# Latin look-alikes from Cyrillic and Greek (the ones that survive NFKC)
_CONFUSABLES = str.maketrans(
    {
        "а": "a",
        "е": "e",
        "о": "o",
        "р": "p",
        "с": "c",
        "у": "y",
        "х": "x",
        "і": "i",
        "ј": "j",
        "ѕ": "s",
        "ԁ": "d",
        "ɡ": "g",
        "һ": "h",
        "ӏ": "l",
        "А": "A",
        "В": "B",
        "Е": "E",
        "К": "K",
        "М": "M",
        "Н": "H",
        "О": "O",
        "Р": "P",
        "С": "C",
        "Т": "T",
        "Х": "X",
        "У": "Y",
        "І": "I",
        "Ј": "J",
        "Ѕ": "S",
        "α": "a",
        "ο": "o",
        "ρ": "p",
        "ν": "v",
        "τ": "t",
        "ι": "i",
        "κ": "k",
        "Α": "A",
        "Β": "B",
        "Ε": "E",
        "Ζ": "Z",
        "Η": "H",
        "Ι": "I",
        "Κ": "K",
        "Μ": "M",
        "Ν": "N",
        "Ο": "O",
        "Ρ": "P",
        "Τ": "T",
        "Υ": "Y",
        "Χ": "X",
    }
)
_AT = re.compile(
    r"\s*(?:[\[\(\{<]\s*(?:at|@)\s*[\]\)\}>]|\s(?:at|AT)\s(?=[\w.-]+\s*(?:[\[\(\{<]\s*)?(?:dot|\.)))\s*", re.IGNORECASE
)
_DOT = re.compile(r"\s*(?:[\[\(\{<]\s*(?:dot|\.)\s*[\]\)\}>]|\s(?:dot|DOT)\s)\s*", re.IGNORECASE)
_NUMBER_WORDS = {
    "zero": "0",
    "oh": "0",
    "nought": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
}
_NUMBER_WORD = re.compile(r"\b(" + "|".join(_NUMBER_WORDS) + r")\b", re.IGNORECASE)
_DIGIT_RUN_SEPARATORS = re.compile(r"(?<=\d)[\s\-./_·•|,]{1,3}(?=\d)")


def canonical(text: str) -> str:
    """NFKC (full-width digits, ligatures), no invisible characters, Latin look-alikes mapped."""
    text = unicodedata.normalize("NFKC", text)
    return _INVISIBLE.sub("", text).translate(_CONFUSABLES)


@dataclass(frozen=True)
class TextViews:
    raw: str

    @cached_property
    def text(self) -> str:
        return canonical(self.raw)

    @cached_property
    def deobfuscated(self) -> str:
        """'jane [at] corp [dot] com' -> 'jane@corp.com'; spelled-out digits -> digits."""
        text = _DOT.sub(".", _AT.sub("@", self.text))
        return self._spelled_digits(text)

    @cached_property
    def compact_digits(self) -> str:
        """Separators between digits removed: '4111 1111-1111.1111' -> '4111111111111111'."""
        return _DIGIT_RUN_SEPARATORS.sub("", self.deobfuscated)

    @cached_property
    def compact_words(self) -> str:
        """Lower-case letters and digits only, for admin terms written 'Blue-Bird' or 'b l u e b i r d'."""
        return re.sub(r"[^0-9a-z]", "", self.deobfuscated.casefold())

    @staticmethod
    def _spelled_digits(text: str) -> str:
        """Runs of four or more spelled digits become digits ('four one one one ...')."""
        words = list(_NUMBER_WORD.finditer(text))
        if len(words) < 4:
            return text
        out, last, run = [], 0, []

        def flush() -> None:
            nonlocal last
            if len(run) >= 4:
                out.append(text[last : run[0].start()])
                out.append("".join(_NUMBER_WORDS[m.group(1).lower()] for m in run))
                last = run[-1].end()

        for match in words:
            if run and not re.fullmatch(r"[\s,\-]*", text[run[-1].end() : match.start()]):
                flush()
                run = []
            run.append(match)
        flush()
        out.append(text[last:])
        return "".join(out)

    def all(self) -> tuple[str, ...]:
        return (self.text, self.deobfuscated, self.compact_digits)
