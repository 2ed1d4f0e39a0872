"""The ways one sentence-transformers model can run on a CPU ("paths"), each a `texts -> vectors` call.

Which is fastest depends on the CPU (native bf16, AVX512-VNNI, AMX, AVX2 only) and on the batch:
a single query often runs fastest in ONNX Runtime fp32, a bulk batch in torch bf16 or ORT int8.
rag.embed_calibration measures them; this module only builds them. Every path returns unit-normalised
float32 vectors from the same tokenizer, window and pooling as the sentence-transformers model.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

EmbedFn = Callable[[Sequence[str]], np.ndarray]
TORCH_PATHS = ("float32", "bfloat16")
ONNX_PATHS = ("onnx-float32", "onnx-int8")
ALL_PATHS = TORCH_PATHS + ONNX_PATHS


def normalise(vectors: np.ndarray) -> np.ndarray:
    # normalised in float32: in bfloat16 the norm itself is off by ~0.3%
    out = np.asarray(vectors, dtype=np.float32)
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return out


def model_sha(model_path: str) -> str:
    """Hash of the folder's config and weight files: a fine-tuned model gets its own calibration/export."""
    digest = hashlib.sha256()
    root = Path(model_path)
    for file in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in {".json", ".safetensors", ".bin"}):
        digest.update(str(file.relative_to(root)).encode())
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def torch_path(model: Any, dtype: str, batch_size: int) -> EmbedFn:
    """`model` is the sentence-transformers model; bfloat16 runs a cast copy of it."""
    import copy

    import torch

    if dtype == "bfloat16":
        model = copy.deepcopy(model).to(torch.bfloat16)

    def embed(texts: Sequence[str]) -> np.ndarray:
        vectors = model.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=False,
            convert_to_numpy=False,
            convert_to_tensor=True,
            show_progress_bar=False,
        )
        return normalise(vectors.float().cpu().numpy())

    return embed


def _pooling(model: Any) -> str | None:
    """'mean' or 'cls' when the model is Transformer + Pooling (+ Normalize) only; else None (no ONNX)."""
    modules = list(model)
    kinds = [type(m).__name__ for m in modules]
    if kinds[:2] != ["Transformer", "Pooling"] or any(k != "Normalize" for k in kinds[2:]):
        return None
    config = modules[1].get_config_dict()
    mode = config.get("pooling_mode")  # sentence-transformers >= 6: one name
    if isinstance(mode, str):
        return mode if mode in ("mean", "cls") else None
    modes = [k for k, v in config.items() if k.startswith("pooling_mode") and v]  # older: one flag each
    if len(modes) != 1:
        return None
    return {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls"}.get(modes[0])


def onnx_supported(model: Any) -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return _pooling(model) is not None


def _export(model: Any, folder: Path) -> tuple[Path, list[str]]:
    """The transformer exported once to `folder` (torch.onnx, local weights only), reused afterwards."""
    import torch

    tokenizer = model.tokenizer
    # a padded pair: the traced graph must keep the attention mask (with an all-ones sample some
    # attention implementations skip it, and padded rows would attend to padding)
    pair = ["a sample sentence", "a longer sample sentence, padded less"]
    sample = tokenizer(pair, padding=True, return_tensors="pt")
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]
    target = folder / "model.onnx"
    if target.exists():
        return target, names
    folder.mkdir(parents=True, exist_ok=True)
    auto_model = model[0].auto_model

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = auto_model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.model(**dict(zip(names, inputs, strict=True))).last_hidden_state

    traced = folder / f"model.traced.onnx.{os.getpid()}.tmp"
    partial = folder / f"model.onnx.{os.getpid()}.tmp"
    # eager attention traces to the MatMul/Softmax pattern ONNX Runtime's fusion recognises
    # (scaled_dot_product_attention does not), so the graph below gets fused Attention nodes
    previous = auto_model.config._attn_implementation
    try:
        auto_model.set_attn_implementation("eager")
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                Encoder().eval(),
                tuple(sample[n] for n in names),
                str(traced),
                input_names=names,
                output_names=["hidden"],
                opset_version=17,
                dynamo=False,
                dynamic_axes={n: {0: "batch", 1: "seq"} for n in [*names, "hidden"]},
            )
    finally:
        auto_model.set_attn_implementation(previous)
    try:
        _fuse(traced, partial, auto_model.config)
    finally:
        traced.unlink(missing_ok=True)
    os.replace(partial, target)  # atomic: a concurrent loader sees the whole file or none
    return target, names


def _fuse(source: Path, target: Path, config: Any) -> None:
    """ONNX Runtime's transformer fusions (attention, embedding + layer norm, bias + GELU, skip +
    layer norm): fewer, larger kernels, about 1.15x on fp32 and what lets int8 quantise attention.
    A model whose pattern is not recognised keeps its plain graph (the fusion is an optimisation)."""
    from onnxruntime.transformers.optimizer import optimize_model

    heads, hidden = getattr(config, "num_attention_heads", 0), getattr(config, "hidden_size", 0)
    if getattr(config, "model_type", "") not in ("bert", "roberta", "xlm-roberta", "mpnet") or not heads:
        os.replace(source, target)
        return
    with _quiet():  # the optimiser reports each fusion on the root logger
        optimised = optimize_model(str(source), model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=1)
    optimised.save_model_to_file(str(target))


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """ONNX Runtime's tools log advice on the root logger and warn: not for an operator."""
    root = logging.getLogger()
    level = root.level
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        root.setLevel(logging.ERROR)
        try:
            yield
        finally:
            root.setLevel(level)


def _quantised(source: Path) -> Path:
    """Weights of the linear layers (the fused attention's input projection included) in int8, per
    channel, activations quantised per batch (VNNI on x86). Attention's activation-by-activation
    products and the feed-forward output projection stay in float: quantising them costs accuracy."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target = source.with_name("model.int8.onnx")
    if target.exists():
        return target
    graph = onnx.load(str(source)).graph
    weights = {i.name for i in graph.initializer}
    # a MatMul between two activations (attention scores, context) has no constant weight input;
    # the feed-forward output projection reads GELU's long-tailed activations, which one dynamic
    # int8 scale per tensor cannot hold (measured on AVX2: minimum cosine 0.988 with it, 0.994 without)
    skip = [
        n.name
        for n in graph.node
        if n.op_type == "MatMul"
        and (not any(i in weights for i in n.input) or ("/output/dense/" in n.name and "/attention/" not in n.name))
    ]
    partial = source.with_name(f"model.int8.onnx.{os.getpid()}.tmp")
    # the quantiser logs advice ("consider pre-processing") on the root logger
    with _quiet():
        quantize_dynamic(
            str(source),
            str(partial),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul", "Attention"],
            nodes_to_exclude=skip,
            # the fused graph's contrib operators defeat shape inference for a few tensors
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    os.replace(partial, target)
    return target


EXPORT_FORMAT = 3  # bump when _export or _quantised changes what they write
# rows of a padded batch: an export whose graph lost the attention mask agrees on the longest only
_PROBE = [
    "Leave requests go to your manager two weeks ahead.",
    "Travel expense claims are due within thirty days of the trip, with every receipt attached and the "
    "project code written on the form, or the finance team returns them unpaid.",
    "Badge",
]
_PROBE_MIN_COSINE = {"onnx-float32": 0.999, "onnx-int8": 0.98}


def export_folder(cache_dir: Path, model_sha: str) -> Path:
    """Where one model's exports live: keyed by the weights and by everything that shapes the export
    (this module's format, torch, transformers, ONNX Runtime), so a file from another version is never
    picked up."""
    import onnxruntime
    import torch
    import transformers

    versions = f"{EXPORT_FORMAT}|{torch.__version__}|{transformers.__version__}|{onnxruntime.__version__}"
    return cache_dir / "onnx" / f"{model_sha}-{hashlib.sha256(versions.encode()).hexdigest()[:8]}"


def onnx_path(model: Any, kind: str, batch_size: int, threads: int, cache_dir: Path) -> EmbedFn:
    """ONNX Runtime on the CPU: 'onnx-float32' or 'onnx-int8'. Batches are sorted by length to cut padding.
    `cache_dir` is export_folder(...). The path is checked against the model itself on a padded batch
    before it is returned: a damaged or foreign export is rebuilt once, then refused (ValueError)."""
    embed = _onnx_path(model, kind, batch_size, threads, cache_dir)
    if _agrees(model, embed, kind):
        return embed
    log.warning("embedder path %s: the cached export disagrees with the model; exporting again", kind)
    for name in ("model.onnx", "model.int8.onnx"):
        (cache_dir / name).unlink(missing_ok=True)
    embed = _onnx_path(model, kind, batch_size, threads, cache_dir)
    if not _agrees(model, embed, kind):
        raise ValueError(f"the ONNX export ({kind}) does not reproduce the model's vectors")
    return embed


def _agrees(model: Any, embed: EmbedFn, kind: str) -> bool:
    reference = torch_path(model, "float32", len(_PROBE))(_PROBE)
    return float(np.min(np.sum(reference * embed(_PROBE), axis=1))) >= _PROBE_MIN_COSINE[kind]


def _onnx_path(model: Any, kind: str, batch_size: int, threads: int, cache_dir: Path) -> EmbedFn:
    import onnxruntime as ort

    pooling = _pooling(model)
    if pooling is None:
        raise ValueError("this model's modules cannot run in ONNX Runtime (not Transformer + Pooling)")
    exported, names = _export(model, cache_dir)
    file = _quantised(exported) if kind == "onnx-int8" else exported
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])
    tokenizer = model.tokenizer
    window = int(model.max_seq_length)
    dim = int(model.get_embedding_dimension())

    def embed(texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        out = np.zeros((len(texts), dim), dtype=np.float32)
        order = np.argsort([len(t) for t in texts], kind="stable")
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            enc = tokenizer(
                [texts[i] for i in rows], padding=True, truncation=True, max_length=window, return_tensors="np"
            )
            hidden = session.run(None, {n: enc[n].astype(np.int64) for n in names})[0]
            if pooling == "cls":
                out[rows] = hidden[:, 0]
            else:
                mask = enc["attention_mask"][..., None].astype(np.float32)
                out[rows] = (hidden * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
        return normalise(out)

    return embed
