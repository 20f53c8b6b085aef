"""E_d, the RegionEncoder: K object tokens from the user box (paper eq. 1, design §3).

The dataset already gives the box crop at native resolution (``region``); E_v encodes it and this
module pools the crop's feature grid into K tokens:

* ``grid`` mode (default): one whole-box token plus a g×g grid of RoI cells (K = 1 + g²);
* ``detections`` mode: the whole-box token plus one token per given detection box inside the region
  (K = 1 + ``num_detections``; empty slots get a learned padding token).

Every token gets an MLP embedding of its box (x0, y0, x1, y1, area), normalised to the whole image.
RoI pooling is RoIAlign written with ``torch.nn.functional.grid_sample`` (no torchvision).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def roi_align(features: torch.Tensor, boxes: torch.Tensor, out: int, sampling: int = 2) -> torch.Tensor:
    """RoIAlign by bilinear sampling.

    Args:
        features: (B, C, H, W) feature map.
        boxes: (B, n, 4) boxes as normalised xyxy in [0, 1] of the feature map.
        out: output cells per side.
        sampling: bilinear samples per cell side (averaged).

    Returns:
        (B, n, out*out, C) pooled features, cells in row-major order.
    """
    b, c = features.shape[:2]
    n = boxes.shape[1]
    steps = (torch.arange(out * sampling, device=features.device, dtype=features.dtype) + 0.5) / (out * sampling)
    x0, y0, x1, y1 = boxes.unbind(-1)                                        # (B, n)
    xs = x0[..., None] + steps * (x1 - x0)[..., None]                        # (B, n, out*s)
    ys = y0[..., None] + steps * (y1 - y0)[..., None]
    gs = out * sampling
    grid = torch.stack([xs[:, :, None, :].expand(b, n, gs, gs),
                        ys[:, :, :, None].expand(b, n, gs, gs)], dim=-1)      # (B, n, gs, gs, 2)
    grid = grid.reshape(b, n * gs, gs, 2) * 2 - 1
    sampled = F.grid_sample(features, grid, mode="bilinear", padding_mode="border", align_corners=False)   # (B, C, n*gs, gs)
    sampled = sampled.view(b, c, n, out, sampling, out, sampling).mean(dim=(4, 6))  # (B, C, n, out, out)
    return sampled.flatten(3).permute(0, 2, 3, 1)                            # (B, n, out*out, C)


def box_features(boxes: torch.Tensor) -> torch.Tensor:
    """(…, 4) normalised xyxy -> (…, 5) with the box area appended."""
    area = (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(min=0)
    return torch.cat([boxes, area[..., None]], dim=-1)


def cell_boxes(side: int, device: torch.device | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """(side*side, 4) normalised xyxy of a side×side grid's cells, in row-major (token) order."""
    t = torch.arange(side, device=device, dtype=dtype) / side
    x0, y0 = t.repeat(side), t.repeat_interleave(side)
    return torch.stack([x0, y0, x0 + 1 / side, y0 + 1 / side], dim=-1)


class RegionEncoder(nn.Module):
    """Pool K object tokens from the encoded box crop and add box-coordinate embeddings.

    Args:
        width: channel width of the crop feature grid (E_v width).
        mode: ``grid`` or ``detections``.
        grid: g, RoI cells per side (grid mode).
        num_detections: detection token slots (detections mode).
        sampling: bilinear samples per RoI cell side.
        box_hidden: hidden width of the box MLP.
    """

    def __init__(self, width: int, *, mode: str = "grid", grid: int = 2, num_detections: int = 8,
                 sampling: int = 2, box_hidden: int = 64) -> None:
        super().__init__()
        if mode not in ("grid", "detections"):
            raise ValueError(f"region mode must be 'grid' or 'detections', got {mode!r}")
        self.mode, self.grid, self.num_detections, self.sampling = mode, grid, num_detections, sampling
        self.box_mlp = nn.Sequential(nn.Linear(5, box_hidden), nn.GELU(), nn.Linear(box_hidden, width))
        if mode == "detections":
            self.pad_token = nn.Parameter(torch.zeros(width))

    @property
    def num_tokens(self) -> int:
        """K, the number of region tokens per sample."""
        return 1 + (self.grid * self.grid if self.mode == "grid" else self.num_detections)

    def forward(self, crop_grid: torch.Tensor, box: torch.Tensor, detections: torch.Tensor | None = None,
                detections_valid: torch.Tensor | None = None, window: torch.Tensor | None = None) -> torch.Tensor:
        """Pool region tokens.

        Args:
            crop_grid: (B, C, h, w) E_v features of the box crop.
            box: (B, 4) the user box, normalised xyxy of the whole image.
            detections: (B, n, 4) detection boxes, normalised xyxy of the whole image (detections mode).
            detections_valid: (B, n) bool, which detection rows are real.
            window: (B, 4) normalised xyxy of the image area the crop canvas spans (the dataset's
                ``region_window``; it differs from ``box`` when the crop was padded to a square).
                None means the crop is exactly the box.

        Returns:
            (B, K, C) region tokens (before φ_l).
        """
        b = crop_grid.shape[0]
        if window is None:
            window = box
        ww = (window[:, 2:] - window[:, :2]).clamp(min=1e-6)                            # (B, 2)

        def to_canvas(xyxy: torch.Tensor) -> torch.Tensor:                              # image -> canvas coords
            return torch.cat([(xyxy[..., :2] - window[:, None, :2]) / ww[:, None],
                              (xyxy[..., 2:] - window[:, None, :2]) / ww[:, None]], dim=-1)

        full = to_canvas(box[:, None])                                                   # (B, 1, 4)
        whole = roi_align(crop_grid, full, 1, self.sampling * self.grid)[:, 0]        # (B, 1, C)
        if self.mode == "grid":
            cells = roi_align(crop_grid, full, self.grid, self.sampling)[:, 0]          # (B, g*g, C)
            tokens = torch.cat([whole, cells], dim=1)                                  # (B, K, C)
        else:
            n = self.num_detections
            if detections is None:
                detections = box.new_zeros(b, 0, 4)
            if detections.shape[1] > n:
                raise ValueError(f"{detections.shape[1]} detections given, the config allows num_detections={n}")
            valid = (detections_valid if detections_valid is not None
                     else torch.ones(detections.shape[:2], dtype=torch.bool, device=box.device))
            pad = n - detections.shape[1]
            detections = F.pad(detections, (0, 0, 0, pad))
            valid = F.pad(valid, (0, pad), value=False)
            local = to_canvas(detections).clamp(0, 1)
            det = roi_align(crop_grid, local, 1, self.sampling)[:, :, 0]                 # (B, n, C)
            det = torch.where(valid[..., None], det, self.pad_token.expand_as(det))
            tokens = torch.cat([whole, det], dim=1)
        return tokens + self.box_mlp(box_features(self.token_boxes(box, detections)))

    def token_boxes(self, box: torch.Tensor, detections: torch.Tensor | None = None) -> torch.Tensor:
        """(B, K, 4) normalised image xyxy each region token covers (the box, then its cells or detections)."""
        if self.mode == "grid":
            bw = (box[:, 2:] - box[:, :2]).clamp(min=1e-6)
            local = cell_boxes(self.grid, box.device, box.dtype)
            cells = torch.cat([box[:, None, :2] + local[None, :, :2] * bw[:, None],
                               box[:, None, :2] + local[None, :, 2:] * bw[:, None]], dim=-1)
            return torch.cat([box[:, None], cells], dim=1)
        det = box.new_zeros(box.shape[0], 0, 4) if detections is None else detections
        det = F.pad(det, (0, 0, 0, self.num_detections - det.shape[1]))
        return torch.cat([box[:, None], det], dim=1)
