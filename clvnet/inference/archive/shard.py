"""Ranks: ``torchrun`` / ``accelerate launch`` set ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``PORT``.

Work is split by raster: every box of a raster runs on the same rank, so the feature cache and the windowed
reads pay off. Rasters are given to ranks greedily, largest pending box count first, to the least-loaded rank
(ties to the lower rank); every rank computes the same assignment from the same sorted job list, so no
message is needed. ``torch.distributed`` (gloo on CPU, NCCL with one rank per GPU) is used only at the end:
an all-reduce of the failure count, which is also the barrier before rank 0 merges the parts.
"""

from __future__ import annotations

import heapq
import os
from dataclasses import dataclass
from datetime import timedelta

from clvnet.inference.archive.plan import RasterJob

# the final all-reduce waits for the slowest rank: a whole shard of an archive
BARRIER_TIMEOUT = timedelta(days=7)


@dataclass(frozen=True)
class Ranks:
    """This process's place among the ranks."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_env() -> Ranks:
    """The ranks set by the launcher, or a single process."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as exc:
        raise ValueError(f"RANK / WORLD_SIZE / LOCAL_RANK must be integers: {exc}") from None
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"RANK={rank} is not within WORLD_SIZE={world}")
    return Ranks(rank=rank, world=world, local_rank=local)


def device_for(ranks: Ranks, device: str) -> str:
    """``auto`` -> one GPU per rank (``cuda:LOCAL_RANK``) when CUDA is available, else ``cpu``."""
    import torch

    if device == "auto":
        return f"cuda:{ranks.local_rank}" if torch.cuda.is_available() else "cpu"
    return device


def init(ranks: Ranks, device: str) -> None:
    """Join the process group (gloo on CPU, NCCL on CUDA) when there is more than one rank."""
    import torch.distributed as dist

    if ranks.world == 1 or dist.is_initialized():
        return
    backend = "nccl" if device.startswith("cuda") else "gloo"
    dist.init_process_group(backend=backend, timeout=BARRIER_TIMEOUT)


def sum_over_ranks(ranks: Ranks, value: int, device: str) -> int:
    """Sum of ``value`` over the ranks (a barrier); the value itself with one rank."""
    if ranks.world == 1:
        return value
    import torch
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.int64, device=device if device.startswith("cuda") else "cpu")
    dist.all_reduce(t)
    return int(t.item())


def finish(ranks: Ranks) -> None:
    """Leave the process group."""
    import torch.distributed as dist

    if ranks.world > 1 and dist.is_initialized():
        dist.destroy_process_group()


def assign(jobs: list[RasterJob], ranks: Ranks) -> list[RasterJob]:
    """This rank's jobs (see the module docstring for the rule)."""
    if ranks.world == 1:
        return list(jobs)
    order = sorted(range(len(jobs)), key=lambda i: (-len(jobs[i].boxes), i))
    heap: list[tuple[int, int]] = [(0, r) for r in range(ranks.world)]
    mine: list[int] = []
    for i in order:
        load, r = heapq.heappop(heap)
        if r == ranks.rank:
            mine.append(i)
        heapq.heappush(heap, (load + len(jobs[i].boxes), r))
    return [jobs[i] for i in sorted(mine)]


