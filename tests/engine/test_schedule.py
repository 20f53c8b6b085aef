"""The lr schedule: linear warm-up to the peak, cosine to the floor, by steps or by elapsed time."""

from __future__ import annotations

import math

import pytest
import torch

from clvnet.engine.schedule import LRScheduler, ScheduleConfig, lr_factor, step_progress, time_progress


def test_warmup_is_linear_to_peak() -> None:
    cfg = ScheduleConfig(warmup_steps=150)
    assert lr_factor(cfg, 0, 0.0) == pytest.approx(1 / 150)
    assert lr_factor(cfg, 74, 0.0) == pytest.approx(75 / 150)
    assert lr_factor(cfg, 149, 0.0) == pytest.approx(1.0)


def test_cosine_after_warmup() -> None:
    cfg = ScheduleConfig(warmup_steps=10, min_lr_ratio=0.1)
    total = 110
    assert lr_factor(cfg, 10, step_progress(10, total, 10)) == pytest.approx(1.0)
    mid = lr_factor(cfg, 60, step_progress(60, total, 10))
    assert mid == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_factor(cfg, 110, step_progress(110, total, 10)) == pytest.approx(0.1)
    assert lr_factor(cfg, 500, 7.0) == pytest.approx(0.1)  # clamped past the end


def test_time_progress_spans_budget_after_warmup() -> None:
    assert time_progress(5.0, 100.0, None) == 0.0
    assert time_progress(10.0, 100.0, 10.0) == 0.0
    assert time_progress(55.0, 100.0, 10.0) == pytest.approx(0.5)
    assert time_progress(100.0, 100.0, 10.0) == pytest.approx(1.0)


def test_scheduler_sets_every_group() -> None:
    p1, p2 = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.AdamW([{"params": [p1], "lr": 1e-3}, {"params": [p2], "lr": 2e-3}])
    sch = LRScheduler(opt, ScheduleConfig(warmup_steps=4))
    assert sch.set(1, 0.0) == pytest.approx(0.5e-3)
    assert opt.param_groups[1]["lr"] == pytest.approx(1e-3)
    sch2 = LRScheduler(opt, ScheduleConfig(warmup_steps=4))
    sch2.load_state_dict(sch.state_dict())
    assert sch2.base_lrs == [1e-3, 2e-3]
