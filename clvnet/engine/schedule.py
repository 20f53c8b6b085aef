"""Learning-rate schedules: linear warm-up then cosine (the paper's default), by steps or by time.

The schedule is a pure function of the optimiser step and of the *progress* of the run, a number
in [0, 1]. For a run bounded by steps the progress is ``step / total_steps``; for a run bounded
by a wall-clock budget (the quickstart) it is ``elapsed / budget``, so the cosine reaches its
floor exactly when the budget runs out however fast the machine is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch


@dataclass
class ScheduleConfig:
    """Learning-rate schedule.

    Attributes:
        name: ``warmup_cosine`` (paper), ``warmup_linear`` or ``constant`` (after warm-up).
        warmup_steps: optimiser steps of linear warm-up from 0 to the base lr (paper: 150).
        min_lr_ratio: floor of the decay as a fraction of the base lr.
    """

    name: Literal["warmup_cosine", "warmup_linear", "constant"] = "warmup_cosine"
    warmup_steps: int = 150
    min_lr_ratio: float = 0.0


def lr_factor(cfg: ScheduleConfig, step: int, progress: float) -> float:
    """Multiplier of the base lr for optimiser step ``step`` (0-based) at run ``progress``.

    Args:
        cfg: the schedule.
        step: number of optimiser steps already taken.
        progress: fraction of the run done, in [0, 1] (clamped).

    Returns:
        A factor in [0, 1].
    """
    if cfg.warmup_steps > 0 and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.name == "constant":
        return 1.0
    p = min(max(progress, 0.0), 1.0)
    if cfg.name == "warmup_linear":
        decay = 1.0 - p
    else:
        decay = 0.5 * (1.0 + math.cos(math.pi * p))
    return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * decay


class LRScheduler:
    """Sets every param group's lr from :func:`lr_factor`; its state is just the base lrs.

    Steps and elapsed time live in the trainer's state, so resuming restores the schedule
    exactly. Progress after warm-up is measured from the end of warm-up, so the cosine spans the
    remainder of the run.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: ScheduleConfig) -> None:
        self.optimizer = optimizer
        self.cfg = cfg
        self.base_lrs = [float(g["lr"]) for g in optimizer.param_groups]

    def set(self, step: int, progress: float) -> float:
        """Apply the lr for ``step`` / ``progress``; returns the first group's lr."""
        f = lr_factor(self.cfg, step, progress)
        for g, base in zip(self.optimizer.param_groups, self.base_lrs):
            g["lr"] = base * f
        return float(self.optimizer.param_groups[0]["lr"])

    def state_dict(self) -> dict[str, list[float]]:
        return {"base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state: dict[str, list[float]]) -> None:
        self.base_lrs = [float(x) for x in state["base_lrs"]]


def step_progress(step: int, total_steps: int, warmup_steps: int) -> float:
    """Progress of the decay phase for a step-bounded run."""
    span = max(total_steps - warmup_steps, 1)
    return (step - warmup_steps) / span


def time_progress(elapsed_s: float, budget_s: float, warmup_elapsed_s: float | None) -> float:
    """Progress of the decay phase for a time-bounded run (0 until warm-up has finished)."""
    if warmup_elapsed_s is None:
        return 0.0
    span = max(budget_s - warmup_elapsed_s, 1e-6)
    return (elapsed_s - warmup_elapsed_s) / span
