"""Grounding encoders: the dense image embedding the mask decoder reads (design §3), one class per kind.

* :class:`SamGrounding` (``sam2`` / ``sam``): ``transformers``' ``Sam2VisionModel`` (Hiera + FPN neck, the
  paper) or ``SamVisionModel`` (ViT, Table III), frozen in the paper presets. SAM2 gives its lowest-resolution
  FPN map (plus SAM2's ``no_memory_embedding``, as ``Sam2Model`` adds for single images) and the two
  higher-resolution maps its decoder needs; SAM gives one map.
* :class:`SharedGrounding` (``shared``, tiny): E_v's own patch grid (a 1×1 conv to the decoder width) plus a
  small conv stem on the pixels for SAM2's 4× and 2× maps, so no second image encoder runs.
* :class:`ConvGrounding` (``conv``, tiny): a from-scratch conv pyramid (2×2 patchify stages at stride
  2/4/8/16, the last three refined by a 3×3 conv, GroupNorm + GELU); the stride-16 map is the embedding and
  the stride-4 and stride-8 maps are the high-resolution maps.

Each takes images (B, 3, H, W) in [0, 1] at any size and resizes them to its own ``image_size``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from clvnet.models.outputs import GroundingFeatures
from clvnet.models.vision import normalize


def wide_positional(pos_module: nn.Module, h: int, w: int) -> torch.Tensor:
    """SAM's image-wide positional embedding (1, C, h, w) from a ``Sam2PositionalEmbedding``."""
    ref: torch.Tensor = pos_module.positional_embedding  # type: ignore[assignment]
    grid = torch.ones((h, w), device=ref.device, dtype=ref.dtype)
    y = (grid.cumsum(dim=0) - 0.5) / h
    x = (grid.cumsum(dim=1) - 0.5) / w
    return pos_module(torch.stack([x, y], dim=-1)).permute(2, 0, 1).unsqueeze(0)


class GroundingEncoder(nn.Module):
    """Common part: pixel normalisation at ``image_size`` and SAM's positional embedding.

    Args:
        positional: a ``Sam2PositionalEmbedding`` (random Fourier features) of the decoder width.
        image_size: the encoder's input side.
        mean, std: pixel normalisation.
    """

    uses_vision_grid = False        # whether forward needs E_v's grid

    def __init__(self, *, positional: nn.Module, image_size: int, mean: tuple[float, ...],
                 std: tuple[float, ...]) -> None:
        super().__init__()
        self.positional: Any = positional
        self.image_size, self.mean, self.std = image_size, tuple(mean), tuple(std)

    def pixels(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W) in [0, 1] resized to ``image_size`` and normalised."""
        return normalize(images, self.mean, self.std, self.image_size)

    def features(self, emb: torch.Tensor, high: list[torch.Tensor] | None) -> GroundingFeatures:
        """Wrap an embedding (B, C, h, w) and its high-resolution maps with the positional embedding."""
        return GroundingFeatures(embedding=emb, positional=wide_positional(self.positional, *emb.shape[-2:]),
                                 high_res=high)

    def forward(self, images: torch.Tensor, vision_grid: torch.Tensor | None = None) -> GroundingFeatures:
        """Encode images (B, 3, H, W) in [0, 1]; ``vision_grid`` is E_v's grid (B, Cv, h, w) when needed."""
        raise NotImplementedError


class SamGrounding(GroundingEncoder):
    """SAM2's Hiera + FPN (``sam2``) or SAM's ViT (``sam``) image encoder.

    Args:
        encoder: a ``Sam2VisionModel`` (``kind="sam2"``) or ``SamVisionModel`` (``kind="sam"``).
        kind: ``sam2`` or ``sam``.
        no_memory_embedding: SAM2's (1, 1, C) parameter added to the embedding (sam2 only).
    """

    def __init__(self, encoder: nn.Module, *, kind: str, no_memory_embedding: nn.Parameter | None = None,
                 **common: Any) -> None:
        super().__init__(**common)
        if (kind == "sam2") != (no_memory_embedding is not None) or kind not in ("sam2", "sam"):
            raise ValueError(f"SamGrounding: kind {kind!r} needs no_memory_embedding exactly when it is sam2")
        self.kind = kind
        self.encoder: Any = encoder
        if no_memory_embedding is not None:
            self.no_memory_embedding = no_memory_embedding

    def forward(self, images: torch.Tensor, vision_grid: torch.Tensor | None = None) -> GroundingFeatures:
        """See :meth:`GroundingEncoder.forward`."""
        out = self.encoder(pixel_values=self.pixels(images))
        if self.kind == "sam":
            return self.features(out.last_hidden_state, None)
        s0, s1, emb = out.fpn_hidden_states[:3]
        return self.features(emb + self.no_memory_embedding.view(1, -1, 1, 1), [s0, s1])


class SharedGrounding(GroundingEncoder):
    """E_v's grid as the embedding, plus a conv stem for the 4× / 2× maps (when the decoder is SAM2's).

    Args:
        vision_width, channels: E_v width and decoder width C.
        patch_size: E_v's patch size; the stem's strides are patch/4 and patch/2, so its maps are
            exactly 4× and 2× the E_v grid.
        stem_channels: width of the stem's first conv.
        high_res: build the stem (only SAM2's decoder reads high-resolution maps).
    """

    uses_vision_grid = True

    def __init__(self, *, vision_width: int, channels: int, patch_size: int, stem_channels: int = 16,
                 high_res: bool = True, **common: Any) -> None:
        super().__init__(**common)
        self.neck = nn.Conv2d(vision_width, channels, 1)
        self.high_res = high_res
        if high_res:
            s, k = stem_channels, max(patch_size // 4, 1)
            self.stem = nn.Sequential(nn.Conv2d(3, s, k, k), nn.GELU(), nn.Conv2d(s, channels, 3, 1, 1), nn.GELU())
            self.down = nn.Sequential(nn.Conv2d(channels, channels, 2, 2), nn.GELU())
            self.fuse = nn.Conv2d(channels, channels, 2, 2)          # stem detail into the embedding

    def forward(self, images: torch.Tensor, vision_grid: torch.Tensor | None = None) -> GroundingFeatures:
        """See :meth:`GroundingEncoder.forward`."""
        if vision_grid is None:
            raise ValueError("the shared grounding encoder needs E_v's grid")
        emb = self.neck(vision_grid)                                             # (B, C, h, w)
        if not self.high_res:
            return self.features(emb, None)
        s0 = self.stem(self.pixels(images))                                      # (B, C, H/4, W/4)
        s1 = self.down(s0)                                                       # (B, C, H/8, W/8)
        h, w = emb.shape[-2:]
        if s1.shape[-2:] != (2 * h, 2 * w):      # E_v patch size other than 16: match SAM2's 4x / 2x maps
            s0 = F.interpolate(s0, size=(4 * h, 4 * w), mode="bilinear", align_corners=False)
            s1 = F.interpolate(s1, size=(2 * h, 2 * w), mode="bilinear", align_corners=False)
        return self.features(emb + self.fuse(s1), [s0, s1])


def _conv_block(c_in: int, c_out: int, refine: bool) -> nn.Sequential:
    """2x2 stride-2 conv (patchify) + GroupNorm + GELU, then (``refine``) a 3x3 conv + GroupNorm + GELU."""
    g = max(1, min(8, c_out // 8))
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 2, 2, bias=False), nn.GroupNorm(g, c_out), nn.GELU()]
    if refine:
        layers += [nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.GroupNorm(g, c_out), nn.GELU()]
    return nn.Sequential(*layers)


class ConvPyramid(nn.Module):
    """Four stages at stride 2/4/8/16; returns the stride-16 map and the stride-4 / stride-8 maps, all C wide.

    Args:
        channels: the four stage widths.
        width: decoder width C.
        high_res: also project the stride-4 / stride-8 maps (only SAM2's decoder reads them).
    """

    def __init__(self, channels: list[int], width: int, high_res: bool = True) -> None:
        super().__init__()
        if len(channels) != 4:
            raise ValueError(f"grounding.conv_channels needs 4 stage widths (stride 2/4/8/16), got {channels}")
        ins = [3, *channels[:-1]]
        # the stride-2 stage is a single patchify conv (a 3x3 at half resolution would dominate the CPU cost)
        self.stages = nn.ModuleList(_conv_block(i, o, refine=k > 0) for k, (i, o) in enumerate(zip(ins, channels)))
        self.high_res = high_res
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in (channels[1:] if high_res else channels[3:]))
        # oneDNN's convolutions run faster on channels-last (NHWC) tensors on CPU; the outputs are NCHW again

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        """Normalised pixels (B, 3, H, W) -> (embedding (B, C, H/16, W/16), [(B, C, H/4, W/4), (B, C, H/8, W/8)]).

        The high-resolution maps are None without ``high_res``.
        """
        maps = []
        x = pixels
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        if not self.high_res:
            return self.lateral[0](maps[3]).contiguous(), None
        s4, s8, s16 = (lat(m).contiguous() for lat, m in zip(self.lateral, maps[1:]))
        return s16, [s4, s8]


class ConvGrounding(GroundingEncoder):
    """A from-scratch :class:`ConvPyramid` (``conv_channels`` widths) projected to the decoder width C.

    ``high_res``: also give the stride-4 / stride-8 maps (only SAM2's decoder reads them).
    """

    def __init__(self, *, channels: int, conv_channels: list[int], high_res: bool = True, **common: Any) -> None:
        super().__init__(**common)
        self.pyramid = ConvPyramid(list(conv_channels), channels, high_res)

    def forward(self, images: torch.Tensor, vision_grid: torch.Tensor | None = None) -> GroundingFeatures:
        """See :meth:`GroundingEncoder.forward`."""
        emb, high = self.pyramid(self.pixels(images))
        return self.features(emb, high)
