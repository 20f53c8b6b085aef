"""Multi-process plumbing on top of Hugging Face ``accelerate``.

The same :func:`clvnet.engine.trainer.train` runs as one CPU process (tests, quickstart) or
under ``accelerate launch`` / ``torchrun`` (DDP, multi-GPU, multi-node, DeepSpeed ZeRO-2).
Data is sharded here rather than by ``accelerator.prepare(dataloader)`` so the sampler can
resume mid-epoch exactly: each epoch is one seeded permutation; rank ``r`` of ``W`` takes
``perm[r::W]`` after truncating the permutation to a multiple of ``W`` (no sample is seen twice
in an epoch, at most ``W - 1`` are left out of it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import Sampler


def launched_distributed() -> bool:
    """True when started by ``torchrun`` / ``accelerate launch`` with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def make_accelerator(*, device: str, precision: str, grad_accum: int, find_unused_parameters: bool) -> Any:
    """Build the ``accelerate.Accelerator`` for a run.

    Args:
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
        precision: ``auto`` (bf16 on a CUDA device that supports it, else fp32), ``fp32``, ``bf16``, ``fp16``.
        grad_accum: micro-batches per optimiser step.
        find_unused_parameters: passed to DDP (the caption-only batches leave mask parameters unused).
    """
    from accelerate import Accelerator, DistributedDataParallelKwargs
    from accelerate.state import AcceleratorState

    if not launched_distributed():
        AcceleratorState._reset_state(True)  # several runs in one process (tests, quickstart)
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("train.device=cuda but no CUDA device is available")
    # under `accelerate launch` with a DeepSpeed config, DeepSpeed picks the device (DS_ACCELERATOR=cpu on a CPU);
    # cpu=True would silently replace it with plain DDP
    deepspeed = os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"
    use_cpu = (device == "cpu" or not torch.cuda.is_available()) and not deepspeed
    if precision == "auto":
        precision = "bf16" if (not use_cpu and torch.cuda.is_bf16_supported()) else "fp32"
    mp = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}[precision]
    if mp == "fp16" and use_cpu:
        raise ValueError("train.precision=fp16 needs a CUDA device; use bf16 or fp32 on CPU")
    return Accelerator(
        cpu=use_cpu, mixed_precision=mp, gradient_accumulation_steps=grad_accum,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=find_unused_parameters)],
    )


def configure_deepspeed(accelerator: Any, *, batch_size: int, grad_accum: int, grad_clip: float) -> None:
    """Give DeepSpeed the micro-batch size before ``prepare`` (the trainer shards its own data, so accelerate
    cannot read it from a dataloader), and check that the DeepSpeed config agrees with the clvnet config.

    Raises:
        ValueError: the DeepSpeed config sets gradient accumulation or clipping to another value, or
            accelerate sees fewer processes than were launched (DeepSpeed on CPU with several processes).
    """
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if accelerator.num_processes != launched:
        raise ValueError(f"DeepSpeed: accelerate sees {accelerator.num_processes} process(es) but {launched} were "
                         "launched (DeepSpeed's CPU backend with several processes); data would not be sharded. "
                         "Use one process on a CPU, or GPUs")
    ds = accelerator.state.deepspeed_plugin.deepspeed_config
    ds["train_micro_batch_size_per_gpu"] = batch_size
    ds["train_batch_size"] = batch_size * grad_accum * accelerator.num_processes
    for key, value, ours in (("gradient_accumulation_steps", grad_accum, "train.grad_accum"),
                             ("gradient_clipping", grad_clip, "optim.grad_clip")):
        if ds.get(key) not in (None, "auto", value):
            raise ValueError(f"the DeepSpeed config sets {key}={ds[key]} but {ours}={value}; make them equal")
        ds[key] = value


class ShardedResumableSampler(Sampler[int]):
    """Seeded per-epoch permutation, sharded by rank, that can start mid-epoch.

    Args:
        num_samples: dataset length.
        rank: this process's index.
        world_size: number of processes.
        seed: base seed; epoch ``e`` uses ``seed + e``.
        shuffle: permute (training) or keep order (validation).
    """

    def __init__(self, num_samples: int, *, rank: int = 0, world_size: int = 1, seed: int = 0,
                 shuffle: bool = True) -> None:
        if num_samples < world_size:
            raise ValueError(f"dataset has {num_samples} samples, fewer than the {world_size} processes")
        self.num_samples, self.rank, self.world_size = num_samples, rank, world_size
        self.seed, self.shuffle = seed, shuffle
        self.epoch, self.start = 0, 0

    def set_position(self, epoch: int, start: int) -> None:
        """Iterate epoch ``epoch`` from this rank's ``start``-th sample on."""
        self.epoch, self.start = epoch, start

    def shard(self, epoch: int) -> list[int]:
        """This rank's indices for ``epoch``."""
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + epoch)
            perm = torch.randperm(self.num_samples, generator=g).tolist()
        else:
            perm = list(range(self.num_samples))
        usable = (self.num_samples // self.world_size) * self.world_size
        return perm[:usable][self.rank::self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self.shard(self.epoch)[self.start:])

    def __len__(self) -> int:
        return self.num_samples // self.world_size - self.start


def any_flag(accelerator: Any, flag: bool) -> bool:
    """True if ``flag`` is true on any rank (one tiny all-reduce when distributed)."""
    if accelerator.num_processes == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=accelerator.device)
    return bool(accelerator.reduce(t, reduction="sum").item() > 0)


def gather_objects(accelerator: Any, obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (on every rank)."""
    if accelerator.num_processes == 1:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * accelerator.num_processes
    dist.all_gather_object(out, obj)
    return out
