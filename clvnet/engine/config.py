"""The training config: ``TrainConfig`` = model + data + optimiser + schedule + loop + output folder.

Experiments in ``clvnet/configs/experiments/`` compose a model preset and a data config through the
``defaults:`` list understood by :func:`clvnet.config.read_yaml`::

    defaults:
      - {model: ../model/tiny.yaml}
      - {data: ../data/synthrs.yaml}
    train: {batch_size: 32, time_budget_min: 10}

and every key can be overridden on the command line (``train.batch_size=8``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from clvnet.data.dataset import DatasetConfig
from clvnet.engine.schedule import ScheduleConfig
from clvnet.models import CLVNetConfig


@dataclass
class DataConfig:
    """Where the training data lives and how it is loaded.

    Attributes:
        train: training JSONL (image paths relative to it).
        val: held-out JSONL for periodic validation (``None``: no validation).
        test: test JSONL (used by the quickstart and ``clvnet eval``, not by training).
        dataset: sample construction (sizes, augmentation), shared with the model's input sizes.
        num_workers: DataLoader worker processes (0 = load in the training process).
        val_max_samples: validate on at most this many held-out samples (0 = all).
    """

    train: str = ""
    val: str | None = None
    test: str | None = None
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    num_workers: int = 2
    val_max_samples: int = 64


@dataclass
class OptimConfig:
    """AdamW. Weight decay applies to matrices only (not to biases, norms or embeddings' scales).

    Attributes:
        lr: peak learning rate (paper: 3e-4).
        weight_decay: AdamW decoupled weight decay.
        betas: Adam betas.
        eps: Adam epsilon.
        grad_clip: clip the global gradient norm to this (0 = off).
        lr_scale: lr multiplier per model component (a direct child module such as ``mask_decoder``).
    """

    lr: float = 3e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    grad_clip: float = 1.0
    lr_scale: dict[str, float] = field(default_factory=dict)


@dataclass
class LoopConfig:
    """The training loop.

    Attributes:
        epochs: passes over the training set (ignored when ``max_steps`` is set); ``None`` means 1,
            or unlimited when a time budget is given.
        max_steps: optimiser steps; overrides ``epochs``.
        time_budget_min: stop after this many wall-clock minutes; the lr schedule decays over the
            budget (and over ``max_steps``/``epochs`` too if set: whichever ends first).
        max_minutes: a wall-clock cap on a run bounded by ``max_steps`` or ``epochs``: stop after this many
            minutes even if the steps are not done. Unlike ``time_budget_min`` it leaves the lr schedule
            alone (it runs on steps), so a run the cap does not cut is the same on any machine.
        batch_size: samples per process per micro-batch.
        grad_accum: micro-batches per optimiser step.
        seed: seed of weights, data order and augmentation.
        device: ``auto`` (CUDA if present), ``cpu`` or ``cuda``.
        precision: ``auto`` (bf16 on GPU, fp32 on CPU), ``fp32``, ``bf16`` (also on CPU), ``fp16`` (GPU).
        gradient_checkpointing: trade compute for memory (GPU presets).
        cpu_threads: torch intra-op threads on CPU; 0 = auto: the cores not already busy according to
            the 1-minute load average (at least 1), because oversubscribed OpenMP threads spin and can
            make a step several times slower on a shared machine.
        find_unused_parameters: DDP setting (turn on if a config leaves some trainable part unused).
        log_every: optimiser steps between log rows.
        val_every: optimiser steps between validations (0 = only at the end).
        val_captions: decoded captions written to the log at each validation.
        val_max_new_tokens: generation length cap for those captions.
        save_every: optimiser steps between checkpoints (0 = only at the end).
        keep_last: periodic checkpoints kept (the best one is kept in addition).
        best_metric: validation column that picks the best checkpoint, e.g. ``miou`` or ``loss``.
        best_mode: ``max`` or ``min`` for ``best_metric``.
        max_nonfinite: abort (after saving) after this many non-finite losses in a row.
        tensorboard: also log to TensorBoard when it is installed.
        progress: show a tqdm progress bar on rank 0.
    """

    epochs: int | None = None
    max_steps: int | None = None
    time_budget_min: float | None = None
    max_minutes: float | None = None
    batch_size: int = 8
    grad_accum: int = 1
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    gradient_checkpointing: bool = False
    cpu_threads: int = 0
    find_unused_parameters: bool = False
    log_every: int = 10
    val_every: int = 200
    val_captions: int = 3
    val_max_new_tokens: int = 256
    save_every: int = 500
    keep_last: int = 2
    best_metric: str = "miou"
    best_mode: Literal["max", "min"] = "max"
    max_nonfinite: int = 10
    tensorboard: bool = True
    progress: bool = True


@dataclass
class TrainConfig:
    """Everything one training run needs (design §8.6)."""

    model: CLVNetConfig = field(default_factory=CLVNetConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: LoopConfig = field(default_factory=LoopConfig)
    output_dir: str = "runs/train"


def check_paths(cfg: TrainConfig) -> None:
    """Fail before anything heavy if a data file named by the config is missing."""
    if not cfg.data.train:
        raise FileNotFoundError("config key 'data.train' is empty: give the training JSONL")
    for key in ("train", "val"):
        value = getattr(cfg.data, key)
        if value and not Path(value).is_file():
            raise FileNotFoundError(f"config key 'data.{key}': dataset file not found: {value}")


def check_sizes(cfg: TrainConfig) -> None:
    """Fail at start-up when ``data.dataset`` repeats an input size that differs from the model's.

    Every input size comes from the model preset (``clvnet.models.build.input_views``); the message names
    both keys.
    """
    from clvnet.config import ConfigError
    from clvnet.models.build import VIEW_SOURCES, input_views

    views = input_views(cfg.model)
    for key, value in cfg.data.dataset.sizes().items():
        if getattr(views, key) != value:
            raise ConfigError(f"config key 'data.dataset.{key}' = {value!r} contradicts '{VIEW_SOURCES[key]}', which "
                              f"gives {getattr(views, key)!r}; input sizes come from the model preset, so remove the "
                              f"data key or change the model's")

