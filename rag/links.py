"""Links and images in answers and quotes: only to allowed hosts; everything else made inert.

An answer is rendered by the caller's client (often as Markdown or HTML). A link or image there can
carry data out (an image fetched with the answer in its query string) or lead a reader to a phishing
page, and its URL may come from a poisoned document or an injected question. So a link keeps its text
and loses its target unless the host is allowed (RAG_ANSWER_LINK_HOSTS), an image or HTML element
with a URL is removed, a bare URL is replaced by a visible marker; data: and javascript: never pass.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

LINK_REMOVED = "[link removed]"
IMAGE_REMOVED = "[image removed]"

_TARGET = r"\(\s*<?([^()\s<>]*(?:\([^()\s]*\)[^()\s<>]*)*)>?(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)"
_MD_IMAGE = re.compile(r"!\[([^\]\n]{0,500})\]" + _TARGET)
_MD_LINK = re.compile(r"\[([^\]\n]{0,500})\]" + _TARGET)
_MD_REFERENCE = re.compile(r"(?m)^[ \t]*\[[^\]\n]+\]:[ \t]*(\S+).*$")
_HTML_PAIRED = re.compile(
    r"(?is)<(a|script|iframe|object|form|style|svg|video|audio|button)\b[^>]*>(.*?)</\1\s*>",
)
_HTML_TAG = re.compile(
    r"(?i)</?(?:a|img|script|iframe|object|embed|form|style|svg|video|audio|source|link|meta|input|button|"
    r"image|picture|base|frame|frameset|applet)\b[^>]*>"
)
_AUTOLINK = re.compile(r"<((?:[a-z][a-z0-9+.-]*):[^<>\s]+)>", re.IGNORECASE)
_BARE = re.compile(
    r"(?i)\b(?:https?|ftp|wss?)://[^\s<>\"'`]+"
    r"|(?<![\w/.:@])//[a-z0-9-]+(?:\.[a-z0-9-]+)+(?::\d+)?(?:/[^\s<>\"'`]*)?"
    r"|\bwww\.[a-z0-9-]+(?:\.[a-z0-9-]+)+(?:/[^\s<>\"'`]*)?"
    r"|\b(?:data|javascript|vbscript):[^\s<>\"'`]+"
)
_HOST = re.compile(r"^[a-z0-9.-]+(?::\d{1,5})?$")
_TRAILING = ".,;:!?)]}'\""


def host_allowed(url: str, allowed: Iterable[str]) -> bool:
    """An http(s) URL whose host is one of `allowed` or a subdomain; anything odd in its authority
    (credentials, backslashes, other schemes) is refused: browsers and parsers disagree about those."""
    url = url.strip()
    if url.startswith("//"):
        url = "https:" + url
    elif url.lower().startswith("www."):
        url = "https://" + url
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if parts.scheme.lower() not in ("http", "https") or not _HOST.match(parts.netloc.lower()):
        return False
    host = (parts.hostname or "").rstrip(".")
    return any(host == a or host.endswith("." + a) for a in (h.lower().strip(".") for h in allowed) if a)


def _urls_in(tag: str) -> list[str]:
    return re.findall(
        r"""(?i)\b(?:href|src|srcset|action|formaction|data|poster|background|xlink:href)\s*=\s*["']?([^"'\s>]+)""", tag
    )


def safe_links(text: str, allowed: Iterable[str] = ()) -> str:
    """`text` with every link, image and URL to a host outside `allowed` made inert."""
    allowed = tuple(allowed)

    def ok(url: str) -> bool:
        return host_allowed(url, allowed)

    def image(m: re.Match) -> str:
        return m.group(0) if ok(m.group(2)) else IMAGE_REMOVED

    def link(m: re.Match) -> str:
        return m.group(0) if ok(m.group(2)) else m.group(1)

    def reference(m: re.Match) -> str:
        return m.group(0) if ok(m.group(1)) else LINK_REMOVED

    def paired(m: re.Match) -> str:
        opening = m.group(0)[: m.group(0).find(">") + 1]
        urls = _urls_in(opening)
        if m.group(1).lower() == "a" and urls and all(ok(u) for u in urls):
            return m.group(0)
        return m.group(2) if m.group(1).lower() == "a" else ""

    def tag(m: re.Match) -> str:
        urls = _urls_in(m.group(0))
        if m.group(0).lower().startswith(("<a", "</a")) and urls and all(ok(u) for u in urls):
            return m.group(0)
        return IMAGE_REMOVED if m.group(0).lower().startswith(("<img", "<image", "<picture")) else " "

    def autolink(m: re.Match) -> str:
        return m.group(0) if ok(m.group(1)) else LINK_REMOVED

    def bare(m: re.Match) -> str:
        url = m.group(0)
        kept = url.rstrip(_TRAILING)
        return url if ok(kept) else LINK_REMOVED + url[len(kept) :]

    text = _MD_IMAGE.sub(image, text)
    text = _MD_LINK.sub(link, text)
    text = _MD_REFERENCE.sub(reference, text)
    text = _HTML_PAIRED.sub(paired, text)
    text = _HTML_TAG.sub(tag, text)
    text = _AUTOLINK.sub(autolink, text)
    # bare URLs last, skipping those kept above (an allowed link's target is allowed by construction)
    return _BARE.sub(bare, text)
