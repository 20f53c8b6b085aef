"""Training engine (design §8.6): ``TrainConfig``, ``train(cfg) -> Path``, checkpoints, distributed runs.

``train`` / ``Trainer`` / ``TrainConfig`` are imported lazily so ``import clvnet.engine`` stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TrainConfig", "Trainer", "TrainingAborted", "train"]


def __getattr__(name: str) -> Any:
    if name == "TrainConfig":
        from clvnet.engine.config import TrainConfig

        return TrainConfig
    if name in ("Trainer", "TrainingAborted", "train"):
        from clvnet.engine import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module 'clvnet.engine' has no attribute {name!r}")
