"""Small hand-made GCG records and images shared by the data tests (imported as ``datahelpers``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from clvnet.data import rle
from clvnet.data.record import GCGRecord, from_tagged

H, W = 60, 80


def rect_mask(x0: int, y0: int, x1: int, y1: int, h: int = H, w: int = W) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def make_scene(folder: Path, name: str = "scene", h: int = H, w: int = W) -> Path:
    """Blue image with a red 20x10 block at x 10..30, y 20..30 and a green one at x 50..70, y 5..25."""
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 2] = 200
    img[20:30, 10:30] = (255, 0, 0)
    img[5:25, 50:70] = (0, 255, 0)
    path = folder / f"{name}.png"
    Image.fromarray(img).save(path)
    return path


def make_record(folder: Path, name: str = "scene", box: tuple[float, float, float, float] | None = (8, 18, 32, 32),
                ) -> GCGRecord:
    make_scene(folder, name)
    caption, phrases = from_tagged(
        "A small lot. <p> The red car </p> [SEG] on the left is near <p> a green roof </p> [SEG] to the "
        "north-east, at the top-right."
    )
    phrases[0].masks = [rle.encode(rect_mask(10, 20, 30, 30))]
    phrases[1].masks = [rle.encode(rect_mask(50, 5, 60, 25)), rle.encode(rect_mask(60, 5, 70, 25))]
    return GCGRecord(image=f"{name}.png", height=H, width=W, caption=caption, phrases=phrases, box=box, id=name)
