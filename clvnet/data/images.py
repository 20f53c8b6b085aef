"""Safe image loading: every failure becomes a :class:`~clvnet.data.record.DataError` naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from clvnet.data.record import DataError

# Remote-sensing scenes are legitimately large; keep PIL's bomb check but well above 800x800 tiles.
Image.MAX_IMAGE_PIXELS = 30_000 * 30_000


def load_image(path: str | Path) -> np.ndarray:
    """Read an image as an (H, W, 3) uint8 RGB array.

    Grey, palette and RGBA images are converted to RGB; 16-bit images are rescaled to 8 bits.

    Args:
        path: image file (PNG, JPEG, TIFF ... anything Pillow reads).

    Returns:
        (H, W, 3) uint8 array.

    Raises:
        DataError: the file is missing, unreadable or not a decodable image (the message names it).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("image file not found", file=path)
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float64)
                hi = float(arr.max()) or 1.0
                arr8 = np.clip(arr / hi * 255.0, 0, 255).astype(np.uint8)
                return np.ascontiguousarray(np.stack([arr8] * 3, axis=-1))
            rgb = im.convert("RGB")
            return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"cannot decode image (corrupt or truncated?): {exc}", file=path) from exc


def image_size(path: str | Path) -> tuple[int, int]:
    """(height, width) of an image file, read from its header only.

    Raises:
        DataError: the file is missing or not an image.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("image file not found", file=path)
    try:
        with Image.open(path) as im:
            w, h = im.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"cannot read image header: {exc}", file=path) from exc
    return int(h), int(w)
