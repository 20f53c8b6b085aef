"""Checkpoint files: optimiser and RNG round trips without pickle, atomic folders, rotation, latest."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from clvnet.engine import checkpointing as ck


def _opt_after_steps() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    opt = torch.optim.AdamW([{"params": [m[0].weight], "weight_decay": 0.1},
                             {"params": [m[0].bias, *m[1].parameters()], "weight_decay": 0.0}],
                            lr=1e-2, betas=(0.9, 0.95))
    for _ in range(3):
        m(torch.randn(5, 3)).pow(2).sum().backward()
        opt.step()
        opt.zero_grad()
    return m, opt


def test_optimizer_roundtrip_continues_identically(tmp_path: Path) -> None:
    m, opt = _opt_after_steps()
    ck.write_training_state(tmp_path, optimizer_state=opt.state_dict(), rng_states=[ck.capture_rng()],
                            trainer_state={"step": 3})
    m2 = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    m2.load_state_dict(m.state_dict())
    opt2 = torch.optim.AdamW([{"params": [m2[0].weight]}, {"params": [m2[0].bias, *m2[1].parameters()]}], lr=5.0)
    opt2.load_state_dict(ck.load_optimizer_state(tmp_path))
    assert opt2.param_groups[0]["betas"] == (0.9, 0.95) and opt2.param_groups[0]["weight_decay"] == 0.1
    x = torch.randn(5, 3)
    for mm, oo in ((m, opt), (m2, opt2)):
        mm(x).pow(2).sum().backward()
        oo.step()
    for a, b in zip(m.parameters(), m2.parameters()):
        assert torch.equal(a, b)
    # nothing pickled: the files are safetensors + JSON
    assert {p.name for p in tmp_path.iterdir()} == {"optimizer.safetensors", "optimizer.json", "rng.safetensors",
                                                    "rng.json", "trainer_state.json"}


def test_rng_roundtrip(tmp_path: Path) -> None:
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    ck.write_training_state(tmp_path, optimizer_state={"state": {}, "param_groups": []},
                            rng_states=[ck.capture_rng(), ck.capture_rng()], trainer_state={"step": 0})
    expect = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(9)
    np.random.seed(9)
    random.seed(9)
    state = ck.load_rng_state(tmp_path, 1)
    assert state is not None
    ck.restore_rng(*state)
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expect[0], got[0]) and np.array_equal(expect[1], got[1]) and expect[2] == got[2]
    assert ck.load_rng_state(tmp_path, 2) is None


def test_atomic_dir_leaves_old_checkpoint_on_failure(tmp_path: Path) -> None:
    final = tmp_path / "checkpoint-0000001"
    ck.write_atomic_dir(final, lambda d: (d / "a.txt").write_text("old"))

    def boom(d: Path) -> None:
        (d / "a.txt").write_text("new")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        ck.write_atomic_dir(final, boom)
    assert (final / "a.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint-0000001"]  # no temp folder left behind
    ck.write_atomic_dir(final, lambda d: (d / "a.txt").write_text("new"))
    assert (final / "a.txt").read_text() == "new"


def _fake_ckpt(root: Path, step: int) -> Path:
    p = root / f"checkpoint-{step:07d}"
    p.mkdir(parents=True)
    (p / ck.STATE_FILE).write_text(json.dumps({"step": step}))
    return p


def test_rotate_keeps_last_and_best(tmp_path: Path) -> None:
    root = tmp_path / "checkpoints"
    paths = [_fake_ckpt(root, s) for s in (10, 20, 30, 40, 50)]
    (root / "checkpoint-0000060").mkdir()  # incomplete (no state file): ignored
    doomed = ck.rotate(root, keep_last=2, protect={paths[1]})
    assert sorted(p.name for p in doomed) == ["checkpoint-0000010", "checkpoint-0000030"]
    assert [s for s, _ in ck.list_checkpoints(root)] == [20, 40, 50]


def test_find_latest_prefers_highest_step(tmp_path: Path) -> None:
    assert ck.find_latest(tmp_path) is None
    _fake_ckpt(tmp_path / "checkpoints", 5)
    assert ck.find_latest(tmp_path) == tmp_path / "checkpoints" / "checkpoint-0000005"
    final = tmp_path / "checkpoint"
    final.mkdir()
    (final / ck.STATE_FILE).write_text(json.dumps({"step": 9}))
    assert ck.find_latest(tmp_path) == final
    with pytest.raises(FileNotFoundError, match="not a training checkpoint"):
        ck.read_state(tmp_path / "nope")
