"""E_v (a ``transformers.CLIPVisionModel`` or ``ConvNextModel``) and the 2-layer MLP projector φ_l (paper eq. 1).

The paper's E_v is CLIP ViT-L/14-336, and every preset (``tiny`` included) uses CLIP. A ConvNeXt E_v
(``vision.kind: convnext``) is an option: its stride-4/8/16 stage maps double as the grounding encoder's
pyramid (``grounding.kind: shared``), so one backbone serves the LLM and the mask decoder. As the tiny
quickstart's backbone it learned masks far slower than CLIP + the conv grounding (design §7).
"""

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
    """E_v: returns the feature grid (B, C, h, w) of one hidden layer.

    Args:
        model: a ``CLIPVisionModel`` (``kind="clip"``) or a ``ConvNextModel`` (``kind="convnext"``).
        kind: ``clip`` or ``convnext``; the wrapped model is stored under that attribute name, so
            checkpoint keys read ``vision.clip.…`` / ``vision.convnext.…``.
        select_layer: index into ``hidden_states`` (-1 = last layer, LLaVA uses -2). CLIP drops the CLS
            token; ConvNeXt's ``hidden_states`` are (stem, stage 1, …, stage 4).
        mean, std: pixel normalisation.

    Attributes:
        patch_size: the stride of the selected grid (CLIP's patch size, or the ConvNeXt stage stride).
        width: channels of the selected grid.
        pyramid_widths: (ConvNeXt) channels of the stride 4/8/16 stage maps that ``forward(...,
            return_maps=True)`` also returns; empty for CLIP.
    """

    def __init__(self, model: nn.Module, *, kind: str = "clip", select_layer: int = -1,
                 mean: tuple[float, ...] = (0.5, 0.5, 0.5), std: tuple[float, ...] = (0.5, 0.5, 0.5)) -> None:
        super().__init__()
        if kind not in ("clip", "convnext"):
            raise ValueError(f"vision.kind must be clip or convnext, got {kind!r}")
        self.kind = kind
        setattr(self, kind, model)
        self.select_layer = select_layer
        self.mean, self.std = tuple(mean), tuple(std)
        cfg: Any = model.config
        self.image_size: int = int(cfg.image_size)
        self.pyramid_widths: list[int] = []
        if kind == "clip":
            self.patch_size: int = int(cfg.patch_size)
            self.width: int = int(cfg.hidden_size)
            return
        n_states = len(cfg.hidden_sizes) + 1                         # stem + one per stage
        idx = select_layer % n_states
        if idx == 0:
            raise ValueError("vision.select_layer must pick a ConvNeXt stage (1..4 or -1..-4), not the stem")
        if len(cfg.hidden_sizes) < 3:
            raise ValueError(f"a ConvNeXt E_v needs at least 3 stages, got hidden_sizes={cfg.hidden_sizes}")
        self._index = idx
        self.patch_size = int(cfg.patch_size) * 2 ** (idx - 1)
        self.width = int(cfg.hidden_sizes[idx - 1])
        self.pyramid_widths = [int(c) for c in cfg.hidden_sizes[:3]]

    @property
    def backbone(self) -> Any:
        """The wrapped ``transformers`` model."""
        return getattr(self, self.kind)

    def unused_parameters(self) -> list[str]:
        """Names (relative to this module) of parameters the chosen layer never uses."""
        if self.kind == "convnext":
            last = max(self._index, 3)                               # stages 1-3 feed the grounding pyramid
            names = [n for n, _ in self.named_parameters() if n.startswith("convnext.layernorm.")]
            for i in range(last, len(self.backbone.config.hidden_sizes)):
                names += [n for n, _ in self.named_parameters() if n.startswith(f"convnext.encoder.stages.{i}.")]
            return names
        names = [n for n, _ in self.named_parameters() if ".post_layernorm." in n]
        n_layers = int(self.backbone.config.num_hidden_layers)
        used = n_layers + 1 + self.select_layer if self.select_layer < 0 else self.select_layer
        for i in range(used, n_layers):
            names += [n for n, _ in self.named_parameters() if f".layers.{i}." in n]
        return names

    def forward(self, images: torch.Tensor, size: int | None = None, return_maps: bool = False
                ) -> Any:
        """Encode images (B, 3, H, W) in [0, 1] into a feature grid (B, C, h, w).

        ``size`` (default: the model's image size) is the input side; for CLIP a different size
        interpolates the position embeddings (used for the region crop). With ``return_maps`` the
        result is ``(grid, maps)``: ConvNeXt's stride 4/8/16 stage maps, or None for CLIP.
        """
        size = size or self.image_size
        pixels = normalize(images, self.mean, self.std, size)
        if self.kind == "convnext":
            states = self.backbone(pixel_values=pixels, output_hidden_states=True).hidden_states
            grid = states[self._index]
            return (grid, list(states[1:4])) if return_maps else grid
        out = self.backbone(pixel_values=pixels, output_hidden_states=True,
                            interpolate_pos_encoding=size != self.image_size)
        feats = out.hidden_states[self.select_layer][:, 1:]             # (B, h*w, C), CLS dropped
        side = math.isqrt(feats.shape[1])
        grid = feats.transpose(1, 2).reshape(feats.shape[0], self.width, side, side)
        return (grid, None) if return_maps else grid


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


def grid_to_tokens(grid: torch.Tensor, pool: int = 1, concat: bool = False) -> torch.Tensor:
    """(B, C, h, w) patch grid -> (B, h*w/pool², C) tokens, average-pooled by ``pool``.

    With ``concat`` the pool x pool patches of a token are stacked instead (space-to-depth):
    (B, h*w/pool², C*pool²), channel-major as :func:`torch.nn.functional.pixel_unshuffle` orders them.
    """
    if pool > 1:
        grid = F.pixel_unshuffle(grid, pool) if concat else F.avg_pool2d(grid, pool)
    return grid.flatten(2).transpose(1, 2)


class TokenMerge(nn.Module):
    """Mixes space-to-depth stacked patches (``vision.llm_pool_mode: concat``) back to ``width`` channels.

    A linear map ``width*pool² -> width`` initialised to the average of the ``pool²`` patches, so a fresh
    merge gives exactly the ``avg`` tokens and training can then keep what averaging would blur (a car
    in one of the four patches).
    """

    def __init__(self, width: int, pool: int) -> None:
        super().__init__()
        self.pool = pool
        self.linear = nn.Linear(width * pool * pool, width)
        with torch.no_grad():
            self.linear.weight.copy_(torch.repeat_interleave(torch.eye(width), pool * pool, dim=1) / (pool * pool))
            self.linear.bias.zero_()

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) -> (B, h*w/pool², C)."""
        return self.linear(grid_to_tokens(grid, self.pool, concat=True))
