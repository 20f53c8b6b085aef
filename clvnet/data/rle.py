"""COCO RLE helpers built on pycocotools.

An RLE in clvnet is always the JSON-safe compressed form ``{"size": [H, W], "counts": str}``.
:func:`check_rle` validates one without pycocotools (whose ``merge`` / ``iou`` hang on runs that do not
cover ``H * W``); :func:`decode` and :func:`area` call it first.
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
    if mask.ndim != 2 or mask.size == 0:
        raise ValueError(f"mask must be 2-D (H, W) and hold a pixel, got shape {mask.shape}")
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    counts = rle["counts"]
    return {"size": [int(rle["size"][0]), int(rle["size"][1])],
            "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}


def _as_coco(rle: RLE) -> dict[str, Any]:
    h, w = check_rle(rle)  # never hand pycocotools a malformed RLE (it can loop forever on one)
    counts = rle["counts"]
    if isinstance(counts, list):  # uncompressed RLE
        return mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w)
    return {"size": [h, w], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


def decode(rle: RLE) -> np.ndarray:
    """RLE (compressed or uncompressed) -> (H, W) uint8 mask.

    Raises:
        ValueError: a malformed RLE (:func:`check_rle`).
    """
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


def rle_box(rle: RLE) -> tuple[float, float, float, float] | None:
    """Tight box ``(x0, y0, x1, y1)`` (exclusive max) of an RLE mask without decoding it, or None if empty."""
    x, y, w, h = (float(v) for v in mask_utils.toBbox(_as_coco(rle)))
    return None if w <= 0 or h <= 0 else (x, y, x + w, y + h)


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


# --------------------------------------------------------------------------- validation
MAX_PIXELS = 2**32 - 1  # pycocotools stores run lengths as 32-bit unsigned integers
_LEB_MAX_CHARS = 7      # 7 x 5 bits hold any 32-bit run length (with its delta and sign)
_SHORT = 512            # counts strings shorter than this are decoded by a plain loop


def counts_from_string(counts: str | bytes) -> np.ndarray:
    """Run lengths of a compressed COCO ``counts`` string, decoded exactly as pycocotools' ``rleFrString``.

    Each value is written in 5-bit groups (``chr(48 + group)``, bit 0x20 = more groups follow, bit 0x10 of
    the last group = negative); from the fourth value on, each is stored as its difference to the value two
    places before it. Decoded here in Python / numpy, so even a huge garbage string cannot hang.

    Returns:
        int64 run lengths (not yet checked for sign or sum).

    Raises:
        ValueError: a character outside ``'0'``..``'o'``, or a string cut off inside a value.
    """
    return np.asarray(_runs(counts), dtype=np.int64)


def counts_to_string(runs: list[int]) -> str:
    """The compressed COCO ``counts`` string of ``runs`` (pycocotools' ``rleToString``), for any run lengths.

    The inverse of :func:`counts_from_string`. pycocotools only encodes masks, so this is how tests and the
    bad-input corpus write RLEs whose runs do not cover their mask.
    """
    out = []
    for i, run in enumerate(runs):
        x = run - runs[i - 2] if i > 2 else run
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            out.append(chr(48 + (c | 0x20 if more else c)))
    return "".join(out)


def _runs(counts: str | bytes) -> list[int] | np.ndarray:
    """:func:`counts_from_string` as a list (short strings) or an int64 array (long ones)."""
    raw = counts.encode("ascii", errors="replace") if isinstance(counts, str) else bytes(counts)
    if len(raw) < _SHORT:
        return _runs_py(raw)
    b = np.frombuffer(raw, dtype=np.uint8)
    bad = np.flatnonzero((b < 48) | (b > 111))
    if bad.size:
        _bad_char(raw, int(bad[0]))
    return _runs_np(b.astype(np.int64) - 48)


def _bad_char(raw: bytes, i: int) -> None:
    char = chr(raw[i]) if raw[i] != 63 else "?"  # '?' also stands for a non-ASCII character
    raise ValueError(f"counts string has {char!r} at position {i}, outside the RLE alphabet '0'..'o'")


def _runs_py(raw: bytes) -> list[int]:
    """:func:`counts_from_string` for short strings (a plain loop beats numpy's per-call cost there)."""
    runs: list[int] = []
    x = k = 0
    for i, ch in enumerate(raw):
        c = ch - 48
        if not 0 <= c <= 63:
            _bad_char(raw, i)
        x |= (c & 0x1F) << (5 * k)
        k += 1
        if not c & 0x20:
            if k > _LEB_MAX_CHARS:
                raise ValueError(f"counts string holds a run length of {k} characters (at most "
                                 f"{_LEB_MAX_CHARS} for a 32-bit count)")
            if c & 0x10:
                x -= 1 << (5 * k)
            if len(runs) > 2:
                x += runs[-2]
            runs.append(x)
            x = k = 0
    if k:
        raise ValueError("counts string ends inside a run length (truncated?)")
    return runs


def _runs_np(c: np.ndarray) -> np.ndarray:
    """:func:`counts_from_string` vectorised; ``c`` holds the characters minus 48."""
    more = (c & 0x20) != 0
    if more[-1]:
        raise ValueError("counts string ends inside a run length (truncated?)")
    ends = np.flatnonzero(~more)
    starts = np.concatenate([[0], ends[:-1] + 1])
    lengths = ends - starts + 1
    if int(lengths.max()) > _LEB_MAX_CHARS:
        raise ValueError(f"counts string holds a run length of {int(lengths.max())} characters (at most "
                         f"{_LEB_MAX_CHARS} for a 32-bit count)")
    group = np.repeat(np.arange(ends.size), lengths)
    shift = 5 * (np.arange(c.size) - starts[group])
    vals = np.add.reduceat((c & 0x1F) << shift, starts)
    neg = (c[ends] & 0x10) != 0
    vals[neg] -= np.left_shift(1, 5 * lengths[neg])
    runs = vals.copy()
    runs[1::2] = np.cumsum(vals[1::2])  # value i (i >= 3) is stored as a delta to value i - 2
    runs[2::2] = np.cumsum(vals[2::2])
    return runs


def _size(rle: Any) -> tuple[int, int]:
    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        raise ValueError(f"not a COCO RLE (needs 'size' and 'counts'): {str(rle)[:80]}")
    size = rle["size"]
    if not isinstance(size, (list, tuple)) or len(size) != 2:
        raise ValueError(f"RLE size must be [height, width], got {str(size)[:40]}")
    out = []
    for v in size:
        integral = isinstance(v, (int, np.integer)) or (isinstance(v, float) and v.is_integer())
        if isinstance(v, bool) or not integral or v < 0:
            raise ValueError(f"RLE size must be two non-negative integers, got {str(size)[:40]}")
        out.append(int(v))
    h, w = out
    if h == 0 or w == 0:
        raise ValueError(f"RLE size {h}x{w} holds no pixel")
    if h * w > MAX_PIXELS:
        raise ValueError(f"RLE size {h}x{w} exceeds {MAX_PIXELS} pixels (32-bit run lengths)")
    return h, w


def check_rle(rle: Any) -> tuple[int, int]:
    """Check that ``rle`` is a well-formed COCO RLE whose runs cover its size exactly; return ``(H, W)``.

    Every RLE is checked before pycocotools sees it: pycocotools' ``merge`` and ``iou`` loop forever
    when the run lengths do not add up to ``H * W``, ``decode`` / ``area`` accept a short mask, and ``merge``
    writes past its buffer when runs other than the first are empty (pycocotools never writes those).

    Raises:
        ValueError: not an RLE, a bad or empty size, counts of the wrong type, an undecodable counts string,
            a negative run, an empty run after the first, or run lengths that do not sum to ``H * W``.
    """
    h, w = _size(rle)
    counts = rle["counts"]
    runs: list[int] | np.ndarray
    if isinstance(counts, (str, bytes)):
        runs = _runs(counts)
    elif isinstance(counts, list):
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in counts):
            raise ValueError("uncompressed RLE counts must be a list of integers")
        runs = [int(v) for v in counts]
        if runs and max(runs) > MAX_PIXELS:
            raise ValueError(f"RLE run length {max(runs)} exceeds {MAX_PIXELS}")
    else:
        raise ValueError(f"RLE counts must be a string or a list of integers, got {type(counts).__name__}")
    if len(runs) and int(min(runs)) < 0:
        i = int(np.argmin(runs))
        raise ValueError(f"RLE run {i} has negative length {int(runs[i])}")
    if len(runs) > 1 and int(min(runs[1:])) == 0:  # pycocotools' merge overflows its buffer on these
        i = 1 + int(np.argmin(runs[1:]))
        raise ValueError(f"RLE run {i} has length 0 (only the first run, of background, may be empty)")
    total = int(sum(runs)) if isinstance(runs, list) else int(runs.sum())
    if total != h * w:
        raise ValueError(f"RLE runs cover {total} pixels but the size {h}x{w} has {h * w}")
    return h, w
