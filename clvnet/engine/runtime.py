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


def param_groups(model: torch.nn.Module, weight_decay: float, lr: float,
                 lr_scale: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """AdamW groups: weight decay on matrices (ndim >= 2) only, lr scaled per top-level component.

    Args:
        model: the model; its direct children are the components (``vision``, ``mask_decoder``, ...).
        weight_decay: decay of matrices.
        lr: base learning rate.
        lr_scale: ``{component name: lr multiplier}``; a name that is not a child of the model raises.

    Raises:
        ValueError: an unknown component name, or nothing is trainable.
    """
    scale = dict(lr_scale or {})
    children = dict(model.named_children())
    unknown = sorted(set(scale) - set(children))
    if unknown:
        raise ValueError(f"config key 'optim.lr_scale.{unknown[0]}': the model has no component {unknown[0]!r} "
                         f"(components: {', '.join(sorted(children))})")
    owner: dict[int, float] = {}
    for name, mult in scale.items():
        for p in children[name].parameters():
            owner[id(p)] = mult
    groups: dict[tuple[float, bool], list[torch.nn.Parameter]] = {}
    for p in model.parameters():
        if p.requires_grad:
            groups.setdefault((owner.get(id(p), 1.0), p.ndim >= 2), []).append(p)
    if not groups:
        raise ValueError("the model has no trainable parameters")
    return [{"params": ps, "lr": lr * mult, "weight_decay": weight_decay if decays else 0.0}
            for (mult, decays), ps in sorted(groups.items(), key=lambda kv: (kv[0][0], not kv[0][1]))]
