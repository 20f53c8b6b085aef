"""LocationCues: the project's two measured additions to the paper's inputs, as one passed-in module.

Neither is in the paper; both are off in the paper presets and on in the quickstart (design §7):

* ``grounding.feed_llm``: the grounding embedding (trained fast by the mask loss) is added to E_v's
  features before φ_l: average-pooled onto the image-token grid, and RoI-pooled over each region token's
  box, through one zero-initialised linear map (so a fresh model equals the paper's path);
* ``region.box_mark``: the user box marked on the global view: :class:`BoxMark` adds a box-relative
  embedding of every cell to the LLM's image tokens and/or the mask decoder's dense prompt.

With every part off, each method returns its input unchanged.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from clvnet.models.outputs import GroundingFeatures, ImageFeatures
from clvnet.models.region import cell_boxes, roi_align


def box_relative_features(boxes: torch.Tensor, side: int) -> torch.Tensor:
    """(B, side*side, 5) features of each cell of a side×side grid over the image, relative to each box.

    Per cell (row-major): the fraction of the cell the box covers, then the signed distances of the cell
    centre to the box's left, right, top and bottom edges (positive inside, in units of a quarter image
    side, so "above the box" is a negative third feature).
    """
    cells = cell_boxes(side, boxes.device, boxes.dtype)                             # (n, 4)
    x0, y0, x1, y1 = (boxes[:, None, k] for k in range(4))                          # (B, 1)
    cx0, cy0, cx1, cy1 = (cells[None, :, k] for k in range(4))                      # (1, n)
    ow = (torch.minimum(x1, cx1) - torch.maximum(x0, cx0)).clamp(min=0)
    oh = (torch.minimum(y1, cy1) - torch.maximum(y0, cy0)).clamp(min=0)
    cover = ow * oh * side * side
    mx, my = (cx0 + cx1) / 2, (cy0 + cy1) / 2
    return torch.stack([cover, 4 * (mx - x0), 4 * (x1 - mx), 4 * (my - y0), 4 * (y1 - my)], dim=-1)


class BoxMark(nn.Module):
    """An MLP of :func:`box_relative_features` whose last layer starts at zero (a fresh mark changes nothing)."""

    def __init__(self, width: int, hidden: int = 64) -> None:
        super().__init__()
        first, last = nn.Linear(5, hidden), nn.Linear(hidden, width)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.mlp = nn.Sequential(first, nn.GELU(), last)

    def forward(self, boxes: torch.Tensor, side: int) -> torch.Tensor:
        """(B, side*side, width) marks for boxes (B, 4) in normalised xyxy."""
        return self.mlp(box_relative_features(boxes.to(next(self.parameters()).dtype), side))


class LocationCues(nn.Module):
    """``feed_llm`` and ``box_mark``; each part is None when off.

    Args:
        feed: zero-initialised ``Linear(grounding width -> E_v width)`` (``grounding.feed_llm``).
        mark_llm: :class:`BoxMark` of the LLM width, added to the image tokens.
        mark_mask: :class:`BoxMark` of the decoder width, added to the dense prompt.
    """

    def __init__(self, *, feed: nn.Linear | None = None, mark_llm: BoxMark | None = None,
                 mark_mask: BoxMark | None = None) -> None:
        super().__init__()
        self.feed, self.mark_llm, self.mark_mask = feed, mark_llm, mark_mask

    def image_cells(self, cells: torch.Tensor, grounding: GroundingFeatures) -> torch.Tensor:
        """E_v cells (B, n, Cv) (a square grid) plus the grounding embedding pooled onto that grid."""
        if self.feed is None:
            return cells
        side = math.isqrt(cells.shape[1])
        pooled = F.adaptive_avg_pool2d(grounding.embedding, side).flatten(2).transpose(1, 2)   # (B, n, C)
        return cells + self.feed(pooled.to(cells.dtype))

    def region_tokens(self, tokens: torch.Tensor, grounding: GroundingFeatures, token_boxes: torch.Tensor
                      ) -> torch.Tensor:
        """Region tokens (B, K, Cv) plus the grounding embedding RoI-pooled over each token's box (B, K, 4)."""
        if self.feed is None:
            return tokens
        pooled = roi_align(grounding.embedding, token_boxes.to(grounding.embedding.dtype), 1)[:, :, 0]
        return tokens + self.feed(pooled.to(tokens.dtype))

    def mark(self, feats: ImageFeatures, boxes: torch.Tensor | None) -> ImageFeatures:
        """The features with the box marked on them; ``feats`` itself stays box-independent (cacheable)."""
        if boxes is None or (self.mark_llm is None and self.mark_mask is None):
            return feats
        tokens, grounding = feats.image_tokens, feats.grounding
        if self.mark_llm is not None:
            tokens = tokens + self.mark_llm(boxes, math.isqrt(tokens.shape[1])).to(tokens.dtype)
        if self.mark_mask is not None:
            emb = grounding.embedding
            b, _, h, w = emb.shape
            if h != w:
                raise ValueError(f"region.box_mark needs a square grounding embedding, got {h}x{w}")
            mark = self.mark_mask(boxes, h).transpose(1, 2).reshape(b, -1, h, w).to(emb.dtype)
            dense = mark if grounding.dense_prompt is None else grounding.dense_prompt + mark
            grounding = GroundingFeatures(emb, grounding.positional, grounding.high_res, dense)
        return ImageFeatures(tokens, grounding)
