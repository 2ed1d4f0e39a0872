"""Write a hard-wrapped copy of a BEIR folder: every document's text through `textwrap.fill(text, WIDTH)`.

    python bench/wrap_beir.py ../shared/eval/scifact /tmp/scifact-wrapped [--width 72]

The same words with a newline every ~72 columns, as plain-text exports and e-mails have them; queries
and qrels are linked unchanged. Used to show that chunking does not depend on line breaks (issue 18).
"""

from __future__ import annotations

import argparse
import json
import os
import textwrap
from pathlib import Path


def wrap_folder(source: Path, target: Path, width: int = 72) -> int:
    target.mkdir(parents=True, exist_ok=True)
    n = 0
    with (
        open(source / "corpus.jsonl", encoding="utf-8") as src,
        open(target / "corpus.jsonl", "w", encoding="utf-8") as dst,
    ):
        for line in src:
            doc = json.loads(line)
            doc["text"] = textwrap.fill(doc["text"], width)
            dst.write(json.dumps(doc, ensure_ascii=False) + "\n")
            n += 1
    for name in ("queries.jsonl", "qrels"):
        link = target / name
        if not link.exists():
            os.symlink((source / name).resolve(), link)
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--width", type=int, default=72)
    args = parser.parse_args()
    print(f"{wrap_folder(args.source, args.target, args.width)} documents wrapped at {args.width} columns")


if __name__ == "__main__":
    main()
