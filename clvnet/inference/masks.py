"""Full-resolution masks from low-resolution logits, without full-resolution arrays.

The model predicts mask logits on an (m, n) grid that covers the whole image. The full-resolution mask
is ``bilinear_upsample(logits, (H, W)) > 0`` (``align_corners=False``, as ``torch.nn.functional.interpolate``).
For a 20,000 x 20,000 scene that array would be 400 MB, so everything here works on a window and in
column strips:

- :func:`positive_window` bounds the pixels that can be positive (bilinear weights are convex, so a pixel
  is > 0 only if one of its source cells is);
- :func:`upsample_window` evaluates the separable bilinear upsampling on any window (two small matmuls);
- :func:`logits_to_rle` builds the column-major COCO RLE counts strip by strip from each strip's runs and
  its offset, then lets pycocotools compress them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

Window = tuple[int, int, int, int]  # x0, y0, x1, y1
STRIP_BYTES = 32 * 2**20  # float32 bytes per column strip


def interp_matrix(out_len: int, in_len: int, start: int = 0, stop: int | None = None,
                  rows_at: np.ndarray | None = None) -> np.ndarray:
    """Rows ``start:stop`` (or ``rows_at``) of the (out_len, in_len) bilinear resampling matrix.

    Matches ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)`` along one axis.
    """
    stop = out_len if stop is None else stop
    i = np.arange(start, stop, dtype=np.float64) if rows_at is None else rows_at.astype(np.float64)
    src = np.maximum((i + 0.5) * (in_len / out_len) - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), in_len - 1)
    i1 = np.minimum(i0 + 1, in_len - 1)
    w1 = (src - i0).astype(np.float32)
    mat = np.zeros((i.size, in_len), dtype=np.float32)
    rows = np.arange(i.size)
    np.add.at(mat, (rows, i0), 1.0 - w1)
    np.add.at(mat, (rows, i1), w1)
    return mat


def upsample_window(logits: np.ndarray, height: int, width: int, window: Window) -> np.ndarray:
    """Bilinear upsampling of (m, n) ``logits`` to (height, width), evaluated only on ``window``."""
    x0, y0, x1, y1 = window
    ry = interp_matrix(height, logits.shape[0], y0, y1)  # (h, m)
    rx = interp_matrix(width, logits.shape[1], x0, x1)  # (w, n)
    return ry @ (logits.astype(np.float32) @ rx.T)  # (h, w)


def positive_window(logits: np.ndarray, height: int, width: int) -> Window | None:
    """A full-resolution window that contains every pixel whose upsampled logit can be > 0 (None if none)."""
    rows, cols = np.nonzero(logits > 0)
    if rows.size == 0:
        return None
    m, n = logits.shape
    sy, sx = height / m, width / n
    y0 = max(0, math.floor((rows.min() - 1) * sy))
    y1 = min(height, math.ceil((rows.max() + 2) * sy))
    x0 = max(0, math.floor((cols.min() - 1) * sx))
    x1 = min(width, math.ceil((cols.max() + 2) * sx))
    return x0, y0, x1, y1


def window_runs(mask: np.ndarray, x0: int, y0: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Runs of ones of a window mask as [start, end) offsets in the full image's column-major order."""
    m = mask.astype(np.int8)
    pad = np.zeros((1, m.shape[1]), dtype=np.int8)
    d = np.diff(np.concatenate([pad, m, pad], axis=0), axis=0)  # (h+1, w)
    sc, sr = np.nonzero(d.T == 1)  # column-major order: sort by column, then row
    ec, er = np.nonzero(d.T == -1)
    base_s = (sc.astype(np.int64) + x0) * height + y0
    base_e = (ec.astype(np.int64) + x0) * height + y0
    return base_s + sr, base_e + er


def runs_to_rle(starts: np.ndarray, ends: np.ndarray, height: int, width: int) -> dict[str, Any]:
    """Column-major runs of ones (sorted, non-overlapping) -> compressed COCO RLE with ``counts`` as str."""
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    if starts.size:
        # merge runs that touch (a run continuing into the next column or strip)
        keep = np.ones(starts.size, dtype=bool)
        keep[1:] = starts[1:] != ends[:-1]
        starts, ends = starts[keep], ends[np.append(keep[1:], True)]
    edges = np.empty(2 * starts.size + 2, dtype=np.int64)
    edges[0], edges[-1] = 0, height * width
    edges[1:-1:2], edges[2:-1:2] = starts, ends
    counts = np.diff(edges)  # zeros, ones, zeros, ..., zeros
    if counts.size > 1 and counts[-1] == 0:
        counts = counts[:-1]
    rle = mask_utils.frPyObjects({"size": [height, width], "counts": [int(c) for c in counts]}, height, width)
    return {"size": [height, width], "counts": rle["counts"].decode("ascii")}


def logits_to_rle(logits: np.ndarray, height: int, width: int,
                  valid: Callable[[Window], np.ndarray | None] | None = None,
                  strip_bytes: int = STRIP_BYTES) -> tuple[dict[str, Any], int, Window | None]:
    """Full-resolution COCO RLE of ``upsample(logits) > 0``, built strip by strip.

    Args:
        logits: (m, n) mask logits covering the whole image.
        height, width: full image size.
        valid: optional callback returning the native validity (False = nodata) of a window, or None.
        strip_bytes: memory budget of one column strip of float32 logits.

    Returns:
        (rle, area in pixels, tight window of the positive pixels or None).
    """
    win = positive_window(logits, height, width)
    starts: list[np.ndarray] = []
    ends: list[np.ndarray] = []
    tight: list[int] | None = None
    if win is not None:
        x0, y0, x1, y1 = win
        h = y1 - y0
        step = max(1, strip_bytes // (4 * h))
        ry = interp_matrix(height, logits.shape[0], y0, y1)
        lf = logits.astype(np.float32)
        for cx in range(x0, x1, step):
            cx1 = min(x1, cx + step)
            rx = interp_matrix(width, logits.shape[1], cx, cx1)
            mask = (ry @ (lf @ rx.T)) > 0
            if valid is not None:
                v = valid((cx, y0, cx1, y1))
                if v is not None:
                    mask &= v
            if not mask.any():
                continue
            s, e = window_runs(mask, cx, y0, height)
            starts.append(s)
            ends.append(e)
            ys = np.nonzero(mask.any(axis=1))[0]
            xs = np.nonzero(mask.any(axis=0))[0]
            box = [cx + int(xs[0]), y0 + int(ys[0]), cx + int(xs[-1]) + 1, y0 + int(ys[-1]) + 1]
            tight = box if tight is None else [min(tight[0], box[0]), min(tight[1], box[1]),
                                               max(tight[2], box[2]), max(tight[3], box[3])]
    s_all = np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64)
    e_all = np.concatenate(ends) if ends else np.zeros(0, dtype=np.int64)
    area = int((e_all - s_all).sum())
    tight_win = None if tight is None else (tight[0], tight[1], tight[2], tight[3])
    return runs_to_rle(s_all, e_all, height, width), area, tight_win


def window_mask(logits: np.ndarray, height: int, width: int, window: Window, max_pixels: int
                ) -> tuple[np.ndarray, int]:
    """``upsample(logits) > 0`` on ``window``, decimated by an integer factor to at most ``max_pixels``.

    Returns:
        (mask of shape (ceil(h / k), ceil(w / k)), k): pixel (i, j) is full-resolution pixel
        (y0 + i*k + k//2, x0 + j*k + k//2) when k > 1, and the exact mask when k == 1.
    """
    x0, y0, x1, y1 = window
    h, w = y1 - y0, x1 - x0
    k = max(1, math.ceil(math.sqrt(h * w / max_pixels)))
    if k == 1:
        return upsample_window(logits, height, width, window) > 0, 1
    ys = np.minimum(np.arange(y0, y1, k) + k // 2, height - 1)
    xs = np.minimum(np.arange(x0, x1, k) + k // 2, width - 1)
    ry = interp_matrix(height, logits.shape[0], rows_at=ys)
    rx = interp_matrix(width, logits.shape[1], rows_at=xs)
    return (ry @ (logits.astype(np.float32) @ rx.T)) > 0, k
