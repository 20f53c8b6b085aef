"""A small deterministic PNG writer for SynthRS images (8-bit RGB, no interlace).

Every row uses PNG filter type 0 (None) and the rows go through one zlib stream at a fixed level,
so the file bytes depend only on the pixels, the level and the zlib library. Pillow's encoder tries
all five PNG filters on every row and keeps the best; on SynthRS's noisy textures that search costs
as much as the compression itself and gains nothing (unfiltered rows compress slightly better
here). Any PNG reader decodes the files; the pixels are exactly the array written.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(tag)))


def encode_png(img: np.ndarray, level: int = 1) -> bytes:
    """PNG file bytes of a ``(H, W, 3)`` uint8 image; ``level`` is the zlib level (0 = stored, 1-9).

    Raises:
        ValueError: if the array is not ``(H, W, 3)`` uint8 or the level is outside 0-9.
    """
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3 or img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f"expected a (H, W, 3) uint8 image, got {img.dtype} {img.shape}")
    if not 0 <= level <= 9:
        raise ValueError(f"PNG compress level must be 0-9, got {level}")
    h, w, _ = img.shape
    rows = np.empty((h, 1 + 3 * w), dtype=np.uint8)
    rows[:, 0] = 0  # filter type None
    rows[:, 1:] = img.reshape(h, 3 * w)
    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)  # 8 bits, RGB, deflate, filter method 0, no interlace
    return (_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows.tobytes(), level))
            + _chunk(b"IEND", b""))


def write_png(path: str | Path, img: np.ndarray, level: int = 1) -> None:
    """Write ``img`` to ``path`` as PNG (see :func:`encode_png`)."""
    Path(path).write_bytes(encode_png(img, level))
