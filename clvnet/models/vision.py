"""E_v, a ``transformers.CLIPVisionModel`` (CLIP ViT-L/14-336 in the paper), and the projector φ_l (eq. 1)."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def normalize(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...], size: int) -> torch.Tensor:
    """Resize ``images`` (B, 3, H, W) in [0, 1] to ``size`` and normalise with ``mean``/``std``."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}")
    if images.shape[-2:] != (size, size):
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    m = images.new_tensor(mean).view(1, 3, 1, 1)
    s = images.new_tensor(std).view(1, 3, 1, 1)
    return (images - m) / s


class VisionEncoder(nn.Module):
    """E_v: the patch-feature grid (B, C, h, w) of one CLIP hidden layer (CLS token dropped).

    Args:
        clip: a ``CLIPVisionModel``; checkpoint keys read ``vision.clip.…``.
        select_layer: index into ``hidden_states`` (-1 = last layer; LLaVA uses -2).
        mean, std: pixel normalisation.

    Attributes:
        image_size, patch_size, width: CLIP's input side, patch size and hidden width.
    """

    def __init__(self, clip: nn.Module, *, select_layer: int = -1, mean: tuple[float, ...] = (0.5, 0.5, 0.5),
                 std: tuple[float, ...] = (0.5, 0.5, 0.5)) -> None:
        super().__init__()
        self.clip: Any = clip
        self.select_layer = select_layer
        self.mean, self.std = tuple(mean), tuple(std)
        cfg: Any = clip.config
        self.image_size, self.patch_size, self.width = int(cfg.image_size), int(cfg.patch_size), int(cfg.hidden_size)

    def unused_parameters(self) -> list[str]:
        """Names (relative to this module) of parameters the selected layer never uses."""
        names = [n for n, _ in self.named_parameters() if ".post_layernorm." in n]
        n_layers = int(self.clip.config.num_hidden_layers)
        used = n_layers + 1 + self.select_layer if self.select_layer < 0 else self.select_layer
        for i in range(used, n_layers):
            names += [n for n, _ in self.named_parameters() if f".layers.{i}." in n]
        return names

    def forward(self, images: torch.Tensor, size: int | None = None) -> torch.Tensor:
        """Encode images (B, 3, H, W) in [0, 1] into a feature grid (B, C, h, w).

        ``size`` (default: CLIP's image size) is the input side; another size interpolates the position
        embeddings (the region crop uses it).
        """
        size = size or self.image_size
        pixels = normalize(images, self.mean, self.std, size)
        out = self.clip(pixel_values=pixels, output_hidden_states=True, interpolate_pos_encoding=size != self.image_size)
        feats = out.hidden_states[self.select_layer][:, 1:]                       # (B, h*w, C)
        side = math.isqrt(feats.shape[1])
        return feats.transpose(1, 2).reshape(feats.shape[0], self.width, side, side)


class Projector(nn.Module):
    """φ_l: Linear · GELU · Linear, shared by image tokens f_x and region tokens f_r."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or out_dim
        self.fc1 = nn.Linear(in_dim, hidden)
        self.fc2 = nn.Linear(hidden, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(…, in_dim) -> (…, out_dim)."""
        return self.fc2(F.gelu(self.fc1(x)))


def grid_to_tokens(grid: torch.Tensor, pool: int = 1) -> torch.Tensor:
    """(B, C, h, w) patch grid -> (B, h*w/pool², C) tokens, average-pooled by ``pool``."""
    if pool > 1:
        grid = F.avg_pool2d(grid, pool)
    return grid.flatten(2).transpose(1, 2)
