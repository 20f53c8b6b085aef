"""GroundingEncoder: the dense image embedding the mask decoder reads (design §3).

Four kinds, chosen by ``grounding.kind``:

* ``sam2``: ``transformers``' ``Sam2VisionModel`` (Hiera + FPN neck), frozen in the paper preset. It
  returns the lowest-resolution FPN map (plus SAM2's ``no_memory_embedding``, as ``Sam2Model`` adds
  for single images) and the two higher-resolution maps that ``Sam2MaskDecoder`` needs.
* ``sam``: ``SamVisionEncoder`` (ViT), for the Table III "SAM decoder" ablation; no high-res maps.
* ``shared``: reuses E_v's own features, so no second image encoder runs.

  - A ConvNeXt E_v (``vision.kind: convnext``) gives a pyramid: its stride-16 stage map plus its (upsampled)
    selected grid is the embedding, and its stride-4 and stride-8 stage maps are SAM2's two
    high-resolution maps (1×1 convs to the decoder width), like SAM2's FPN neck over Hiera.
  - A CLIP E_v's patch grid (a 1×1 conv to the decoder width) gets a three-layer conv stem (4×4
    patchify, 3×3, 2×2 down) on the image for the 4× and 8× maps.
* ``conv``: a small from-scratch conv encoder (2x2 patchify stages at stride 2/4/8/16, the last three
  with a 3x3 conv, GroupNorm + GELU) whose
  stride-8 map (plus the stride-16 map, upsampled) is the image embedding, so the SAM2 decoder works
  on a grid twice as fine as E_v's and its 4x upscaling reaches the mask size directly; the stride-2
  and stride-4 maps are its two high-resolution maps. Optionally E_v's grid is added (``fuse_vision``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from clvnet.models.vision import normalize


def _conv_block(c_in: int, c_out: int, refine: bool) -> nn.Sequential:
    """2x2 stride-2 conv (patchify) + GroupNorm + GELU, then (``refine``) a 3x3 conv + GroupNorm + GELU."""
    g = max(1, min(8, c_out // 8))
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 2, 2, bias=False), nn.GroupNorm(g, c_out), nn.GELU()]
    if refine:
        layers += [nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.GroupNorm(g, c_out), nn.GELU()]
    return nn.Sequential(*layers)


class ConvPyramid(nn.Module):
    """From-scratch conv encoder for the ``conv`` grounding kind.

    Args:
        channels: stage widths; stage i has stride 2**(i+1). Needs 4 stages (stride 2/4/8/16).
        width: decoder width C every output map is projected to.
        embed_stride: 8 (embedding = stride-8 map + upsampled stride-16 map; high-res maps at stride 2
            and 4) or 16 (embedding = stride-16 map; high-res maps at stride 4 and 8).

    The forward pass returns (embedding, [4x map, 2x map]), all with C channels.
    """

    def __init__(self, channels: list[int], width: int, embed_stride: int = 8) -> None:
        super().__init__()
        if len(channels) != 4:
            raise ValueError(f"grounding.conv_channels needs 4 stage widths (stride 2/4/8/16), got {channels}")
        if embed_stride not in (8, 16):
            raise ValueError(f"grounding.conv_embed_stride must be 8 or 16, got {embed_stride}")
        self.embed_stride = embed_stride
        ins = [3, *channels[:-1]]
        # the stride-2 stage is a single patchify conv (a 3x3 at 128x128 would dominate the CPU cost)
        self.stages = nn.ModuleList(_conv_block(i, o, refine=k > 0) for k, (i, o) in enumerate(zip(ins, channels)))
        used = channels if embed_stride == 8 else channels[1:]
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in used)

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Encode normalised pixels (B, 3, H, W)."""
        maps = []
        x = pixels
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        if self.embed_stride == 16:
            s4, s8, s16 = (lat(m) for lat, m in zip(self.lateral, maps[1:]))
            return s16, [s4, s8]
        s2, s4, s8, s16 = (lat(m) for lat, m in zip(self.lateral, maps))
        emb = s8 + F.interpolate(s16, size=s8.shape[-2:], mode="nearest")
        return emb, [s2, s4]


@dataclass
class GroundingFeatures:
    """Dense features of one batch of images.

    Attributes:
        embedding: (B, C, h, w) image embedding.
        positional: (1, C, h, w) image-wide positional embedding.
        high_res: two maps (B, C, 4h, 4w) and (B, C, 2h, 2w) before the decoder's conv_s0/conv_s1,
            or None (SAM ViT).
        dense_prompt: (B, C, h, w) added to the decoder's "no mask" dense prompt embedding (the box
            mark, ``region.box_mark``), or None.
    """

    embedding: torch.Tensor
    positional: torch.Tensor
    high_res: list[torch.Tensor] | None = None
    dense_prompt: torch.Tensor | None = None

    def select(self, index: torch.Tensor) -> GroundingFeatures:
        """Rows ``index`` of the batch (for several boxes on one image)."""
        hr = None if self.high_res is None else [h[index] for h in self.high_res]
        dp = None if self.dense_prompt is None else self.dense_prompt[index]
        return GroundingFeatures(self.embedding[index], self.positional, hr, dp)


def wide_positional(pos_module: nn.Module, h: int, w: int) -> torch.Tensor:
    """SAM's image-wide positional embedding (1, C, h, w) from a ``Sam2PositionalEmbedding``."""
    ref: torch.Tensor = pos_module.positional_embedding  # type: ignore[assignment]
    grid = torch.ones((h, w), device=ref.device, dtype=ref.dtype)
    y = (grid.cumsum(dim=0) - 0.5) / h
    x = (grid.cumsum(dim=1) - 0.5) / w
    return pos_module(torch.stack([x, y], dim=-1)).permute(2, 0, 1).unsqueeze(0)


class GroundingEncoder(nn.Module):
    """Wraps the chosen image encoder and SAM's positional embedding.

    Args:
        kind: ``sam2``, ``sam``, ``shared`` or ``conv``.
        positional: a ``Sam2PositionalEmbedding`` (random Fourier features) of the decoder width.
        encoder: ``Sam2VisionModel`` / ``SamVisionEncoder`` (None for ``shared``).
        no_memory_embedding: SAM2's (1, 1, C) parameter added to the image embedding (sam2 only).
        image_size: encoder input side.
        mean, std: pixel normalisation.
        vision_width, channels, stem_channels: ``shared`` kind widths (E_v width, decoder width, stem).
        high_res: ``shared`` kind: build the conv stem (only SAM2's decoder reads high-res maps).
        patch_size: ``shared`` kind: E_v's patch size; the stem's strides are patch/4 and patch/2 so
            its maps are exactly 4× and 2× the E_v grid.
        conv_channels: ``conv`` kind: the four stage widths of :class:`ConvPyramid`.
        fuse_vision: ``conv`` kind: add E_v's grid (1×1 conv, resized) to the embedding when given.
        conv_embed_stride: ``conv`` kind: stride of the embedding (8 or 16), see :class:`ConvPyramid`.
        pyramid_widths: ``shared`` kind with a hierarchical E_v: channels of its stride 4/8/16 maps.
    """

    def __init__(self, kind: str, *, positional: nn.Module, encoder: nn.Module | None = None,
                 no_memory_embedding: nn.Parameter | None = None, image_size: int = 1024,
                 mean: tuple[float, ...] = (0.485, 0.456, 0.406), std: tuple[float, ...] = (0.229, 0.224, 0.225),
                 vision_width: int = 0, channels: int = 0, stem_channels: int = 16, high_res: bool = True,
                 patch_size: int = 16, conv_channels: list[int] | None = None, fuse_vision: bool = False,
                 conv_embed_stride: int = 8, pyramid_widths: list[int] | None = None) -> None:
        super().__init__()
        if kind not in ("sam2", "sam", "shared", "conv"):
            raise ValueError(f"grounding kind must be sam2, sam, shared or conv, got {kind!r}")
        self.kind, self.image_size, self.mean, self.std = kind, image_size, tuple(mean), tuple(std)
        self.positional: Any = positional
        self.uses_vision_maps = bool(pyramid_widths) and kind == "shared"
        if kind == "shared" and pyramid_widths:
            self.neck = nn.Conv2d(vision_width, channels, 1)
            self.high_res = high_res
            used = pyramid_widths if high_res else pyramid_widths[2:]
            self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in used)
        elif kind == "shared":
            self.neck = nn.Conv2d(vision_width, channels, 1)
            self.high_res = high_res
            if high_res:
                s, k = stem_channels, max(patch_size // 4, 1)
                self.stem = nn.Sequential(nn.Conv2d(3, s, k, k), nn.GELU(), nn.Conv2d(s, channels, 3, 1, 1), nn.GELU())
                self.down = nn.Sequential(nn.Conv2d(channels, channels, 2, 2), nn.GELU())
                self.fuse = nn.Conv2d(channels, channels, 2, 2)      # stem detail into the embedding
        elif kind == "conv":
            self.pyramid = ConvPyramid(list(conv_channels or [16, 32, 64, 64]), channels, conv_embed_stride)
            self.fuse_vision = fuse_vision
            if fuse_vision:
                self.neck = nn.Conv2d(vision_width, channels, 1)
        else:
            if encoder is None:
                raise ValueError(f"grounding kind {kind!r} needs an encoder")
            self.encoder: Any = encoder
            if no_memory_embedding is not None:
                self.no_memory_embedding = no_memory_embedding

    def forward(self, images: torch.Tensor, vision_grid: torch.Tensor | None = None,
                vision_maps: list[torch.Tensor] | None = None) -> GroundingFeatures:
        """Encode images (B, 3, H, W) in [0, 1]; ``shared`` also needs E_v's grid (B, C_v, h, w).

        ``conv`` with ``fuse_vision`` needs it too (it adds the grid to its embedding). ``shared``
        over a ConvNeXt E_v needs its stride 4/8/16 maps (``vision_maps``) as well.
        """
        if self.uses_vision_maps:
            if vision_grid is None or vision_maps is None or len(vision_maps) != 3:
                raise ValueError("the shared grounding encoder over a ConvNeXt E_v needs its grid and 3 stage maps")
            s16 = vision_maps[2]
            emb = self.lateral[-1](s16) + F.interpolate(self.neck(vision_grid), size=s16.shape[-2:], mode="nearest")
            hr = [lat(m) for lat, m in zip(self.lateral[:2], vision_maps[:2])] if self.high_res else None
            pos = wide_positional(self.positional, emb.shape[-2], emb.shape[-1])
            return GroundingFeatures(embedding=emb, positional=pos, high_res=hr)
        pixels = normalize(images, self.mean, self.std, self.image_size)
        if self.kind == "shared":
            if vision_grid is None:
                raise ValueError("the shared grounding encoder needs the vision grid")
            emb = self.neck(vision_grid)                                         # (B, C, h, w)
            if not self.high_res:
                pos = wide_positional(self.positional, emb.shape[-2], emb.shape[-1])
                return GroundingFeatures(embedding=emb, positional=pos, high_res=None)
            s0 = self.stem(pixels)                                               # (B, C, H/4, W/4)
            s1 = self.down(s0)                                                   # (B, C, H/8, W/8)
            h, w = emb.shape[-2:]
            if s1.shape[-2:] != (2 * h, 2 * w):   # E_v patch size other than 16: match SAM2's 4x / 2x maps
                s0 = F.interpolate(s0, size=(4 * h, 4 * w), mode="bilinear", align_corners=False)
                s1 = F.interpolate(s1, size=(2 * h, 2 * w), mode="bilinear", align_corners=False)
            high = [s0, s1]
            emb = emb + self.fuse(s1)
        elif self.kind == "conv":
            emb, high = self.pyramid(pixels)
            if self.fuse_vision:
                if vision_grid is None:
                    raise ValueError("grounding.fuse_vision=true: the conv grounding encoder needs the vision grid")
                emb = emb + F.interpolate(self.neck(vision_grid), size=emb.shape[-2:], mode="bilinear",
                                          align_corners=False)
        elif self.kind == "sam2":
            out = self.encoder(pixel_values=pixels)
            s0, s1, emb = out.fpn_hidden_states[:3]
            emb = emb + self.no_memory_embedding.view(1, -1, 1, 1)
            high = [s0, s1]
        else:
            emb = self.encoder(pixel_values=pixels).last_hidden_state            # (B, C, h, w)
            high = None
        pos = wide_positional(self.positional, emb.shape[-2], emb.shape[-1])
        return GroundingFeatures(embedding=emb, positional=pos, high_res=high)
