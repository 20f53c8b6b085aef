"""Helpers shared by the dataset loaders: path resolution and mask normalisation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from clvnet.data import rle as rle_utils
from clvnet.data.record import DataError, utf8_error


def read_json(path: Path) -> Any:
    """Read a JSON file; a parse error names the file and position."""
    if not path.is_file():
        raise DataError("file not found", file=path)
    try:
        with path.open(encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise DataError(f"not valid JSON (truncated?): {exc.msg} at line {exc.lineno} column {exc.colno}",
                        file=path) from exc
    except UnicodeDecodeError as exc:
        raise utf8_error(exc, path) from None


def resolve(rel: str | Path, *bases: Path | None) -> Path | None:
    """First existing candidate among ``base/rel`` then ``base/basename(rel)`` for each base."""
    if "\x00" in str(rel):  # no file has such a name (and the OS would refuse to look it up)
        return None
    p = Path(rel)
    if p.is_absolute():
        return p if p.exists() else None
    for base in bases:
        if base is None:
            continue
        for cand in (base / p, base / p.name):
            if cand.exists():
                return cand.resolve()
    return None


def normalise_rle(obj: Any, height: int, width: int, *, file: Path, record: str, field: str) -> dict[str, Any]:
    """Any COCO RLE (compressed str/bytes or uncompressed list counts) -> compressed JSON-safe RLE.

    Raises:
        DataError: not a valid RLE (:func:`clvnet.data.rle.check_rle`), or its size differs from the image.
    """
    try:
        h, w = rle_utils.check_rle(obj)
    except ValueError as exc:
        raise DataError(f"not a valid COCO RLE: {exc}", file=file, record=record, field=field) from exc
    if (h, w) != (height, width):
        raise DataError(f"RLE size {h}x{w} differs from the image size {height}x{width}", file=file,
                        record=record, field=field)
    counts = obj["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    if isinstance(counts, str):
        return {"size": [h, w], "counts": counts}
    return rle_utils.encode(rle_utils.decode({"size": [h, w], "counts": counts}))


def mask_to_rle(mask: np.ndarray) -> dict[str, Any]:
    """(H, W) binary mask -> compressed RLE."""
    return rle_utils.encode(mask.astype(np.uint8))
