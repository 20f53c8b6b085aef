"""ImageViews: the image side of preprocessing, shared by the training dataset and the predictor.

One frozen object holds every input size, so training and inference cannot drift apart. The model builds it
from its own preset (``clvnet.models.processor.CLVNetProcessor.views``; saved with every checkpoint) and hands
it to the dataset and the predictor:

* the **global view** for E_v: the whole image resized (stretched) to ``image_size``;
* the **grounding view** for the grounding encoder: the whole image resized from the original pixels to its
  own input size ``grounding_size`` (1024 for SAM2 in the paper presets), never upsampled from the global view;
* the **region** for E_d: the box, grown to ``min_region`` pixels per side if smaller, cut from the
  full-resolution image and centred on a square zero canvas (``region_resize="pad"``, aspect kept) or stretched,
  then resized to ``region_size``; ``region_window`` is the normalised image window the canvas spans;
* the **masks**: per-phrase masks over the whole image at ``mask_size``, area-weighted, thresholded at 0.5,
  and a non-empty phrase never vanishes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from PIL import Image

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class ImageViews:
    """Every image-side input size of a model, and the functions that make its inputs.

    Attributes:
        image_size: side of the global view (E_v's input).
        grounding_size: side of the grounding view (the grounding encoder's input).
        mask_size: side of the mask targets and predictions (over the whole image).
        region_size: side of the region canvas (E_d's input).
        min_region: boxes smaller than this (pixels per side) are grown around their centre.
        region_resize: ``pad`` (square canvas, aspect kept) or ``stretch``.
    """

    image_size: int = 256
    grounding_size: int = 256
    mask_size: int = 128
    region_size: int = 128
    min_region: int = 16
    region_resize: Literal["pad", "stretch"] = "pad"

    def __post_init__(self) -> None:
        for name in ("image_size", "grounding_size", "mask_size", "region_size", "min_region"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"ImageViews.{name} must be >= 1, got {getattr(self, name)}")
        if self.region_resize not in ("pad", "stretch"):
            raise ValueError(f"ImageViews.region_resize must be pad or stretch, got {self.region_resize!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (saved with checkpoints)."""
        return asdict(self)

    def global_views(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(global view (S, S, 3), grounding view (G, G, 3)) of an (H, W, 3) uint8 image, both from its pixels.

        When the two sizes are equal the same array is returned twice.
        """
        view = _resize(rgb, self.image_size)
        return view, view if self.grounding_size == self.image_size else _resize(rgb, self.grounding_size)

    def region_box(self, box: Box, width: int, height: int) -> tuple[int, int, int, int]:
        """The integer pixel window to read for ``box`` (grown to ``min_region``, clipped to the image)."""
        return grow_box(box, self.min_region, width, height)

    def region(self, crop: np.ndarray, window: tuple[int, int, int, int], width: int, height: int
               ) -> tuple[np.ndarray, Box]:
        """(region canvas (R, R, 3), normalised ``region_window``) for the pixels of ``window`` (maybe decimated)."""
        return region_canvas(crop, window, width, height, self.region_size, self.region_resize)

    def masks(self, masks: list[np.ndarray]) -> np.ndarray:
        """(N, M, M) uint8 {0, 1} from N full-resolution masks (H, W)."""
        m = self.mask_size
        if not masks:
            return np.zeros((0, m, m), np.uint8)
        return np.stack([resize_mask(x, m) for x in masks]).astype(np.uint8)


def _resize(rgb: np.ndarray, size: int) -> np.ndarray:
    if rgb.shape[:2] == (size, size):
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((size, size), Image.Resampling.BILINEAR))


def region_canvas(crop: np.ndarray, box: tuple[int, int, int, int], width: int, height: int, size: int,
                  mode: str = "pad") -> tuple[np.ndarray, Box]:
    """The region input for a crop of ``box`` (pixels; the crop may be decimated) of a ``width`` x ``height`` image.

    ``pad`` centres the crop on a zero-filled square (aspect kept), ``stretch`` resizes it as is; either way the
    result is ``size`` x ``size``. Also returns the normalised xyxy window of the image the canvas spans.
    """
    x0, y0, x1, y1 = box
    if mode == "stretch":
        out = np.asarray(Image.fromarray(crop).resize((size, size), Image.Resampling.BILINEAR))
        return out, (x0 / width, y0 / height, x1 / width, y1 / height)
    ch, cw = crop.shape[:2]
    side = max(ch, cw)
    canvas = np.zeros((side, side, 3), np.uint8)
    oy, ox = (side - ch) // 2, (side - cw) // 2
    canvas[oy:oy + ch, ox:ox + cw] = crop
    out = np.asarray(Image.fromarray(canvas).resize((size, size), Image.Resampling.BILINEAR))
    sx, sy = (x1 - x0) / cw, (y1 - y0) / ch  # image pixels per crop pixel (1 unless decimated)
    wx0, wy0 = x0 - ox * sx, y0 - oy * sy
    return out, (wx0 / width, wy0 / height, (wx0 + side * sx) / width, (wy0 + side * sy) / height)


def grow_box(box: Box, min_size: int, width: int, height: int) -> tuple[int, int, int, int]:
    """Integer crop window of ``box`` grown around its centre to ``min_size`` and clipped to the image."""
    x0, y0, x1, y1 = box
    lo: list[int] = []
    hi: list[int] = []
    for a, b, limit in ((x0, x1, width), (y0, y1, height)):
        size = min(max(b - a, min_size), limit)
        start = min(max(0.0, (a + b) / 2 - size / 2), limit - size)
        s = max(0, int(np.floor(start)))
        e = min(limit, max(int(np.ceil(start + size)), s + 1))
        lo.append(s)
        hi.append(e)
    return lo[0], lo[1], hi[0], hi[1]


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """(H, W) binary mask -> (size, size) float32 {0, 1}; area-weighted, never empties a non-empty mask."""
    soft = np.asarray(Image.fromarray((mask > 0).astype(np.float32)).resize((size, size), Image.Resampling.BILINEAR))
    out = soft >= 0.5
    if not out.any() and mask.any():
        out = soft > 0
        if not out.any():  # far below one output pixel: mark the pixel holding the centre
            ys, xs = np.nonzero(mask)
            out[int(ys.mean() * size / mask.shape[0]), int(xs.mean() * size / mask.shape[1])] = True
    return out.astype(np.float32)
