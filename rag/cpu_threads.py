"""How many threads torch may use here: never more than the OpenMP runtime will run.

With OMP_THREAD_LIMIT below torch's thread count (unstructured sets OMP_THREAD_LIMIT=1 in the
environment when its OCR module is imported, and child processes inherit it), torch still splits
work for its own count and its bf16 kernels return wrong rows for padded batches (measured: minimum
cosine 0.06 to fp32). So every torch user in this project takes its count from here.
"""

from __future__ import annotations

import os


def usable_cores() -> int:
    """The cores this process may run on (its affinity), not the machine's count."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def omp_thread_limit() -> int | None:
    value = os.environ.get("OMP_THREAD_LIMIT", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def set_torch_threads(requested: int = 0) -> int:
    """Sets torch's intra-op threads to `requested` (0: as it is), capped by OMP_THREAD_LIMIT; returns
    the count in force."""
    import torch

    threads = requested or torch.get_num_threads()
    limit = omp_thread_limit()
    if limit is not None:
        threads = min(threads, limit)
    if threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    return threads
