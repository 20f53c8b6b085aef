"""Trainer runtime helpers: optimiser groups, CPU threads, gradient checkpointing errors."""

from __future__ import annotations

import os

import pytest
import torch

from clvnet.engine.runtime import auto_threads, enable_gradient_checkpointing, param_groups


def test_param_groups_decay_matrices_only_and_scale_lr() -> None:
    m = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    m[1].weight.requires_grad_(False)
    decay, no_decay = param_groups(m, 0.1, 1e-3)
    assert decay["weight_decay"] == 0.1 and [p.shape for p in decay["params"]] == [(4, 3)]
    assert no_decay["weight_decay"] == 0.0 and len(no_decay["params"]) == 2  # linear bias + norm bias
    groups = param_groups(m, 0.1, 1e-3, {"1": 3.0})
    by_lr: dict[float, list[torch.Tensor]] = {}
    for g in groups:
        by_lr.setdefault(g["lr"], []).extend(g["params"])
    assert len(by_lr[3e-3]) == 1 and by_lr[3e-3][0] is m[1].bias and len(by_lr[1e-3]) == 2
    with pytest.raises(ValueError, match=r"optim\.lr_scale\.decoder"):
        param_groups(m, 0.1, 1e-3, {"decoder": 2.0})
    for p in m.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        param_groups(m, 0.1, 1e-3)


def test_auto_threads_within_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    cores = len(os.sched_getaffinity(0))
    assert 1 <= auto_threads() <= cores
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(2 * cores))
    assert auto_threads() == 1


def test_gradient_checkpointing_needs_support() -> None:
    with pytest.raises(ValueError, match="no part of the model supports it"):
        enable_gradient_checkpointing(torch.nn.Linear(2, 2))
