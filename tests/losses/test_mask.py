"""Mask loss: BCE + Dice over valid objects."""

from __future__ import annotations

import pytest
import torch

from clvnet.losses.mask import dice_loss, mask_losses


def test_dice_perfect_and_empty() -> None:
    t = torch.zeros(1, 8, 8)
    t[0, 2:6, 2:6] = 1
    perfect = torch.where(t > 0, 50.0, -50.0)
    assert float(dice_loss(perfect, t)[0]) == pytest.approx(0.0, abs=1e-6)
    assert float(dice_loss(-perfect, t)[0]) > 0.9


def test_mask_losses_ignore_padding() -> None:
    logits = torch.zeros(1, 2, 4, 4)
    targets = torch.ones(1, 2, 4, 4)
    valid = torch.tensor([[True, False]])
    logits[0, 1] = 1000.0                                   # padded slot: must not matter
    bce, dice = mask_losses(logits, targets, valid)
    assert float(bce) == pytest.approx(0.6931, abs=1e-3)
    bce0, _ = mask_losses(logits, targets, torch.zeros(1, 2, dtype=torch.bool))
    assert float(bce0) == 0.0
    with pytest.raises(ValueError):
        mask_losses(logits, targets[:, :1], valid)
    assert float(dice) > 0
