"""Mask loss: w_bce · BCE + w_dice · Dice over the valid objects (GLaMM / GeoPixel weights 2.0 / 0.5)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def dice_loss(logits: torch.Tensor, targets: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Soft Dice loss per mask.

    Args:
        logits: (N, H, W) mask logits.
        targets: (N, H, W) binary targets.
        eps: smoothing (1.0 as in LISA/GLaMM).

    Returns:
        (N,) Dice losses in [0, 1).
    """
    p = logits.sigmoid().flatten(1)
    t = targets.flatten(1).to(p.dtype)
    num = 2 * (p * t).sum(-1) + eps
    den = p.sum(-1) + t.sum(-1) + eps
    return 1 - num / den


def bce_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-mask mean binary cross-entropy: (N, H, W) -> (N,)."""
    return F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype), reduction="none").flatten(1).mean(-1)


def mask_losses(logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean BCE and mean Dice over valid objects.

    Args:
        logits: (B, N, H, W) predicted mask logits.
        targets: (B, N, H, W) ground-truth masks.
        valid: (B, N) bool.

    Returns:
        ``(bce, dice)`` scalars; both are 0 (still attached to the graph) when no object is valid.
    """
    if logits.shape != targets.shape:
        raise ValueError(f"mask logits {tuple(logits.shape)} and targets {tuple(targets.shape)} differ")
    lg, tg = logits[valid], targets[valid]
    if lg.shape[0] == 0:
        zero = logits.sum() * 0.0
        return zero, zero
    return bce_loss(lg, tg).mean(), dice_loss(lg, tg).mean()
