"""COCO RLE helpers built on pycocotools.

An RLE in clvnet is always the JSON-safe compressed form ``{"size": [H, W], "counts": str}``.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pycocotools import mask as mask_utils

from clvnet.data.polyfill import fill_polygons

RLE = dict[str, Any]
PolygonFill = Literal["contour", "coco"]


def encode(mask: np.ndarray) -> RLE:
    """Binary (H, W) mask -> compressed RLE with ``counts`` as str."""
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {mask.shape}")
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    counts = rle["counts"]
    return {"size": [int(rle["size"][0]), int(rle["size"][1])],
            "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}


def _as_coco(rle: RLE) -> dict[str, Any]:
    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        raise ValueError(f"not a COCO RLE (needs 'size' and 'counts'): {str(rle)[:80]}")
    counts = rle["counts"]
    h, w = (int(x) for x in rle["size"])
    if isinstance(counts, list):  # uncompressed RLE
        return mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w)
    return {"size": [h, w], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


def decode(rle: RLE) -> np.ndarray:
    """RLE (compressed or uncompressed) -> (H, W) uint8 mask."""
    return np.ascontiguousarray(mask_utils.decode(_as_coco(rle)).astype(np.uint8))


def rle_size(rle: RLE) -> tuple[int, int]:
    """(H, W) stored in an RLE."""
    h, w = rle["size"]
    return int(h), int(w)


def area(rle: RLE) -> int:
    """Pixel count of an RLE mask."""
    return int(mask_utils.area(_as_coco(rle)))


def union(rles: list[RLE], height: int, width: int) -> np.ndarray:
    """Union of several RLE masks as an (H, W) uint8 mask (zeros if the list is empty)."""
    out = np.zeros((height, width), dtype=np.uint8)
    for r in rles:
        out |= decode(r)
    return out


def polygons_to_mask(polygons: list[list[list[float]]], height: int, width: int, *,
                     fill: PolygonFill) -> np.ndarray:
    """Rasterise polygons (each a list of ``[x, y]`` points) into one union mask.

    Args:
        polygons: the polygons, each ``[[x, y], ...]``.
        height, width: the mask size.
        fill: ``"contour"``: the contour pixels included, exactly as ``cv2.fillPoly`` on int32 vertices
            (GeoPixelD's rasteriser; see :mod:`clvnet.data.polyfill`). ``"coco"``: pycocotools' COCO
            polygon fill (COCO-format files), which keeps about half of the contour.

    Raises:
        ValueError: an unknown ``fill``, a bad polygon, or (``"coco"``) a polygon of fewer than 3 points.
    """
    if fill == "contour":
        return fill_polygons(polygons, height, width)
    if fill != "coco":
        raise ValueError(f"fill must be 'contour' or 'coco', got {fill!r}")
    flat = []
    for k, p in enumerate(polygons):
        pts = np.asarray(p, dtype=np.float64).reshape(-1)
        if pts.size < 6 or pts.size % 2:
            raise ValueError(f"polygon {k} has {pts.size // 2} point(s); the COCO fill needs at least 3")
        flat.append(pts.tolist())
    if not flat:
        return np.zeros((height, width), dtype=np.uint8)
    rles = mask_utils.frPyObjects(flat, height, width)
    return np.ascontiguousarray(mask_utils.decode(mask_utils.merge(rles)).astype(np.uint8))


def bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Tight box ``(x0, y0, x1, y1)`` (exclusive max) of a mask, or None if empty."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
