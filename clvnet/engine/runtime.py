"""Process-level helpers of the trainer: CPU threads, gradient checkpointing, optimiser groups, signals."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import torch


def ignore_sigint(worker_id: int) -> None:
    """Worker init: DataLoader workers leave Ctrl-C to the training process, which saves a checkpoint and stops them."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _busy_cores(window_s: float = 0.5) -> float:
    """Cores kept busy by other processes right now (from /proc/stat over ``window_s``; load average elsewhere)."""
    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            vals = [int(v) for v in f.readline().split()[1:]]
        idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
        return sum(vals), idle

    try:
        t0, i0 = sample()
        time.sleep(window_s)
        t1, i1 = sample()
    except (OSError, ValueError, IndexError):
        return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    cores = os.cpu_count() or 1
    return cores * (1.0 - (i1 - i0) / max(t1 - t0, 1))


def auto_threads() -> int:
    """CPU threads for torch: the cores not busy with other work (at least 1).

    Oversubscribed OpenMP threads spin, which makes a step several times slower on a shared machine.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if os.environ.get("WORLD_SIZE"):  # torchrun / accelerate: share the cores among local processes
        cores = max(1, cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))
    return max(1, min(cores, cores - int(_busy_cores() + 0.5)))


def enable_gradient_checkpointing(model: torch.nn.Module) -> int:
    """Turn on gradient checkpointing in every ``transformers`` sub-model that supports it; returns how many."""
    n = 0
    for m in model.modules():
        fn = getattr(m, "gradient_checkpointing_enable", None)
        if getattr(m, "supports_gradient_checkpointing", False) and callable(fn):
            fn(gradient_checkpointing_kwargs={"use_reentrant": False})
            n += 1
    if n == 0:
        raise ValueError("train.gradient_checkpointing=true but no part of the model supports it")
    return n


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: weight decay on matrices (ndim >= 2) only; raises if nothing is trainable."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    if not decay and not no_decay:
        raise ValueError("the model has no trainable parameters")
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
