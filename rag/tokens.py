"""The embedder's own tokenizer, light enough for parser processes: chunk sizes are measured in it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from tokenizers import Tokenizer

from rag.errors import ConfigError


class WindowTokenizer:
    """Counts and locates tokens exactly as the embedder will see them (special tokens excluded)."""

    def __init__(self, model_path: str) -> None:
        folder = Path(model_path)
        if not (folder / "tokenizer.json").is_file():
            raise ConfigError(f"no tokenizer.json in embedder folder {model_path}")
        self._tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._tok.no_truncation()
        self._tok.no_padding()
        config = folder / "sentence_bert_config.json"
        seq = json.loads(config.read_text()).get("max_seq_length", 256) if config.is_file() else 256
        self.max_tokens = int(seq) - 2  # [CLS] and [SEP]

    def token_spans(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        """Character span of every token of each text; its length is the text's token count."""
        if not texts:
            return []
        return [e.offsets for e in self._tok.encode_batch(list(texts), add_special_tokens=False)]
