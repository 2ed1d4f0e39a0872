"""Fine-tune the embedder on a corpus without labels: inverse-cloze pseudo-queries, in-batch and
BM25-mined hard negatives, a contrastive (MultipleNegativesRanking) loss, on the CPU.

Why this method: a company has no labelled queries, but every passage carries statements about
itself; learning to find a passage from one of its sentences (with that sentence removed) teaches the
model the corpus's vocabulary and which passages are near-misses, and a low learning rate over one
pass keeps what the packaged model already knows. Measured in bench/tune.py.

Resumable and deterministic: the plan (pairs, order, negatives) is a function of the data and the
seed alone; a checkpoint holds the weights, the optimiser, the schedule and the RNG state, so a
run killed at any point and resumed reaches the same weights as one that never stopped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.cpu_threads import set_torch_threads, usable_cores
from rag.tuning.negatives import mine
from rag.tuning.pairs import make_pair
from rag.tuning.split import is_held_out

METHOD = "ict-mnrl-bm25neg"
CHECKPOINT = "checkpoint.pt"
MODEL = "model"
_FORMAT = 1
_NOT_IN_RESULT = ("max_minutes", "threads", "checkpoint_every")


@dataclass(frozen=True)
class TrainingChunk:
    document_key: str
    chunk_id: int
    text: str


@dataclass(frozen=True)
class TuneConfig:
    max_minutes: float = 30.0
    seed: int = 15
    epochs: int = 1
    batch_size: int = 32
    learning_rate: float = 3e-5
    warmup_share: float = 0.1
    weight_decay: float = 0.01
    scale: float = 20.0  # cosine similarities times this are the logits (sentence-transformers' default)
    query_max_tokens: int = 64
    passage_max_tokens: int = 128  # training only (the saved model keeps the base's window): halves a step
    frozen_layers: int = 3  # the embeddings and the lowest layers stay as they are: faster steps, less forgetting
    hard_negatives: bool = True
    negative_skip: int = 2  # BM25's top hits from other documents skipped as likely false negatives
    negative_depth: int = 20
    max_examples: int = 2000  # per epoch: a seeded sample, so a CPU run ends in minutes
    held_out_fraction: float = 0.1
    checkpoint_every: int = 25  # steps
    bf16: bool = True  # autocast where the CPU has native bf16
    threads: int = 0  # torch threads; 0 = this machine's usable cores (fixed, so a resumed run adds the same way)

    def __post_init__(self) -> None:
        if not self.max_minutes > 0:
            raise ValueError("max_minutes must be positive")
        if self.epochs < 1 or self.batch_size < 2 or self.checkpoint_every < 1:
            raise ValueError("epochs >= 1, batch_size >= 2 and checkpoint_every >= 1 are required")
        if not 0.0 <= self.held_out_fraction < 1.0:
            raise ValueError("held_out_fraction must be in [0, 1)")


@dataclass(frozen=True)
class TuneResult:
    model_dir: Path
    method: str
    settings: dict
    steps: int
    examples: int
    wall_s: float
    completed: bool


@dataclass(frozen=True)
class _Example:
    query: str
    positive: str
    negative: str | None
    doc: int  # document index: same-document passages are never used as negatives of each other
    negative_doc: int


def _plan(chunks: Sequence[TrainingChunk], config: TuneConfig) -> list[list[_Example]]:
    """Every epoch's examples in training order; a pure function of the chunks and the config."""
    train = [c for c in chunks if not is_held_out(c.document_key, config.held_out_fraction)]
    doc_index = {k: i for i, k in enumerate(sorted({c.document_key for c in train}))}
    passages = [c.text for c in train]
    passage_docs = [c.document_key for c in train]
    epochs = []
    for epoch in range(config.epochs):
        pairs = []
        for c in train:
            pair = make_pair(c.document_key, c.chunk_id, c.text, config.seed, epoch)
            if pair is not None:
                pairs.append((c.document_key, pair))
        order = np.random.default_rng([config.seed, epoch]).permutation(len(pairs))[: config.max_examples]
        pairs = [pairs[i] for i in order]
        negatives: list[int | None] = [None] * len(pairs)
        if config.hard_negatives and pairs:
            negatives = mine(
                [p.query for _, p in pairs],
                [k for k, _ in pairs],
                passages,
                passage_docs,
                skip=config.negative_skip,
                depth=config.negative_depth,
                salt=f"{config.seed}:{epoch}",
            )
        epochs.append(
            [
                _Example(
                    p.query,
                    p.positive,
                    None if n is None else passages[n],
                    doc_index[k],
                    -1 if n is None else doc_index[passage_docs[n]],
                )
                for (k, p), n in zip(pairs, negatives, strict=True)
            ]
        )
    return epochs


def _batches(plan: list[list[_Example]], size: int) -> list[list[_Example]]:
    out = []
    for examples in plan:
        for start in range(0, len(examples), size):
            batch = examples[start : start + size]
            if len(batch) >= 2:  # a contrastive step needs another example to contrast with
                out.append(batch)
    return out


def _fingerprint(base_model_dir: Path, chunks: Sequence[TrainingChunk], config: TuneConfig) -> str:
    """What a checkpoint must match to be resumed: the base weights, the data and every knob that
    changes the result (not the time budget, the checkpoint interval or the thread count)."""
    h = hashlib.sha256()
    knobs = {k: v for k, v in dataclasses.asdict(config).items() if k not in _NOT_IN_RESULT}
    h.update(json.dumps({"format": _FORMAT, "method": METHOD, **knobs}, sort_keys=True).encode())
    for f in sorted(base_model_dir.rglob("*")):
        if f.is_file() and f.suffix in (".safetensors", ".bin", ".json"):
            h.update(f.relative_to(base_model_dir).as_posix().encode())
            h.update(str(f.stat().st_size).encode())
            with open(f, "rb") as fh:
                h.update(hashlib.sha256(fh.read()).digest())
    for c in chunks:
        h.update(f"{c.document_key}\x00{c.chunk_id}\x00".encode("utf-8", "surrogatepass"))
        h.update(hashlib.sha256(c.text.encode("utf-8", "surrogatepass")).digest())
    return h.hexdigest()


def _save_atomic(obj: dict, path: Path) -> None:
    import torch

    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_model(model, work_dir: Path) -> Path:
    """The sentence-transformers folder, replaced whole: a reader never sees half of one."""
    final = work_dir / MODEL
    tmp = work_dir / (MODEL + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save(str(tmp))
    old = work_dir / (MODEL + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def _lr_lambda(total: int, warmup: int) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(1, total - warmup))

    return f


def _freeze(model, layers: int) -> None:
    bert = model[0].auto_model
    if layers <= 0:
        return
    for p in bert.embeddings.parameters():
        p.requires_grad = False
    for layer in bert.encoder.layer[:layers]:
        for p in layer.parameters():
            p.requires_grad = False


def _encode(model, texts: list[str], max_tokens: int):
    tok = model[0].tokenizer
    features = tok(texts, padding=True, truncation=True, max_length=max_tokens, return_tensors="pt")
    return model(dict(features))["sentence_embedding"]


def _step_loss(model, batch: list[_Example], config: TuneConfig):
    """MultipleNegativesRanking: each query against every positive and hard negative of the batch;
    passages of the query's own document (other than its positive) are masked, not contrasted."""
    import torch

    queries = [e.query for e in batch]
    passages = [e.positive for e in batch] + [e.negative for e in batch if e.negative is not None]
    passage_docs = [e.doc for e in batch] + [e.negative_doc for e in batch if e.negative is not None]
    q = _encode(model, queries, config.query_max_tokens)
    p = _encode(model, passages, config.passage_max_tokens)
    q = torch.nn.functional.normalize(q.float(), dim=-1)
    p = torch.nn.functional.normalize(p.float(), dim=-1)
    logits = q @ p.T * config.scale
    rows = torch.tensor([e.doc for e in batch]).unsqueeze(1)
    cols = torch.tensor(passage_docs).unsqueeze(0)
    same_doc = rows == cols
    own = torch.zeros_like(same_doc)
    own[torch.arange(len(batch)), torch.arange(len(batch))] = True
    logits = logits.masked_fill(same_doc & ~own, float("-inf"))
    return torch.nn.functional.cross_entropy(logits, torch.arange(len(batch)))


def tune_embedder(
    base_model_dir: Path,
    chunks: Sequence[TrainingChunk],
    work_dir: Path,
    config: TuneConfig,
    progress: Callable[[int, int], None] | None = None,
) -> TuneResult:
    """Train a candidate from `base_model_dir` on the chunks not held out; resumes from the
    checkpoint in `work_dir` when it belongs to the same base, data and settings."""
    import torch

    started = time.monotonic()
    work_dir.mkdir(parents=True, exist_ok=True)
    # Sums split across threads round differently with another thread count: a run resumed in a
    # process whose thread count was changed (by a loaded model's setting, say) would drift from the
    # uninterrupted run. The count is fixed here and the caller's restored afterwards.
    caller_threads = torch.get_num_threads()
    set_torch_threads(config.threads or usable_cores())
    try:
        return _tune(base_model_dir, chunks, work_dir, config, progress, started)
    finally:
        torch.set_num_threads(caller_threads)


def _tune(
    base_model_dir: Path,
    chunks: Sequence[TrainingChunk],
    work_dir: Path,
    config: TuneConfig,
    progress: Callable[[int, int], None] | None,
    started: float,
) -> TuneResult:
    import torch
    from sentence_transformers import SentenceTransformer

    import rag.embedder as embedder_module  # offline switches for the hub, before any model loads

    budget_s = config.max_minutes * 60.0
    fingerprint = _fingerprint(base_model_dir, chunks, config)
    batches = _batches(_plan(chunks, config), config.batch_size)
    total = len(batches)
    settings = {k: v for k, v in dataclasses.asdict(config).items() if k not in ("max_minutes", "threads")}
    settings["training_chunks"] = sum(1 for c in chunks if not is_held_out(c.document_key, config.held_out_fraction))

    model = SentenceTransformer(str(base_model_dir), device="cpu", local_files_only=True)
    _freeze(model, config.frozen_layers)
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.learning_rate,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(total, int(total * config.warmup_share)))
    step, prior_wall = 0, 0.0
    checkpoint_path = work_dir / CHECKPOINT
    if checkpoint_path.is_file():
        state = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
        if state.get("fingerprint") == fingerprint:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["rng"])
            step, prior_wall = int(state["step"]), float(state["wall_s"])
    if step == 0:
        torch.manual_seed(config.seed)

    def save() -> None:
        _save_atomic(
            {
                "fingerprint": fingerprint,
                "step": step,
                "wall_s": prior_wall + time.monotonic() - started,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": torch.get_rng_state(),
            },
            checkpoint_path,
        )

    use_bf16 = config.bf16 and embedder_module.cpu_has_native_bf16()
    model.train()
    last_step_s = 0.0
    saved_at = step
    if progress:
        progress(step, total)
    while step < total:
        elapsed = time.monotonic() - started
        if elapsed + 2 * last_step_s + 5.0 > budget_s:
            break
        t0 = time.monotonic()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
            loss = _step_loss(model, batches[step], config)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        last_step_s = time.monotonic() - t0
        if step % config.checkpoint_every == 0 or step == total:
            save()
            saved_at = step
        if progress:
            progress(step, total)
    if saved_at != step:
        save()
    model.eval()
    model_dir = _write_model(model, work_dir)
    completed = step >= total
    return TuneResult(
        model_dir=model_dir,
        method=METHOD,
        settings=settings,
        steps=step,
        examples=sum(len(b) for b in batches[:step]),
        wall_s=round(prior_wall + time.monotonic() - started, 1),
        completed=completed,
    )
