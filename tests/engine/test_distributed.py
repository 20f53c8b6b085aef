"""Data sharding: disjoint shards that cover the epoch, and exact mid-epoch restarts."""

from __future__ import annotations

import pytest

from clvnet.engine.distributed import ShardedResumableSampler


@pytest.mark.parametrize("world", [1, 2, 3])
def test_shards_are_disjoint_and_cover(world: int) -> None:
    n = 23
    shards = [ShardedResumableSampler(n, rank=r, world_size=world, seed=7).shard(0) for r in range(world)]
    flat = [i for s in shards for i in s]
    assert len(flat) == len(set(flat)) == (n // world) * world
    assert {len(s) for s in shards} == {n // world}


def test_epochs_differ_and_are_seeded() -> None:
    a = ShardedResumableSampler(50, seed=1)
    assert a.shard(0) != a.shard(1)
    assert a.shard(3) == ShardedResumableSampler(50, seed=1).shard(3)


def test_resume_mid_epoch() -> None:
    s = ShardedResumableSampler(20, rank=1, world_size=2, seed=0)
    full = list(s.shard(2))
    s.set_position(2, 4)
    assert list(s) == full[4:] and len(s) == len(full) - 4


def test_too_small_dataset() -> None:
    with pytest.raises(ValueError, match="fewer than the 4 processes"):
        ShardedResumableSampler(3, world_size=4)
