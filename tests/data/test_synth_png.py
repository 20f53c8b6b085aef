"""SynthRS PNG writer: any reader decodes the exact pixels, at every level; bad input raises."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clvnet.data.synth.png import encode_png, write_png


@pytest.mark.parametrize("shape", [(1, 1, 3), (7, 13, 3), (256, 256, 3)])
def test_pixels_round_trip_at_every_level(shape: tuple[int, int, int]) -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, shape, dtype=np.uint8)
    img[: shape[0] // 2] //= 16  # a smoother half, so the levels differ in size
    sizes = []
    for level in (0, 1, 6, 9):
        data = encode_png(img, level)
        with Image.open(io.BytesIO(data)) as im:
            assert im.format == "PNG" and im.mode == "RGB" and im.size == (shape[1], shape[0])
            assert np.array_equal(np.asarray(im), img)
        assert encode_png(img, level) == data  # same bytes every time
        sizes.append(len(data))
    assert sizes[0] >= sizes[1] >= sizes[3] and (shape[0] < 100 or sizes[0] > 1.2 * sizes[1])
    raw = shape[0] * (1 + 3 * shape[1])  # the rows with their filter bytes
    assert raw < sizes[0] < raw + 100 + raw // 1000  # level 0 stores them: raw bytes plus framing


def test_write_png_and_non_contiguous_input(tmp_path: Path) -> None:
    img = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    view = np.ascontiguousarray(img.transpose(1, 0, 2)).transpose(1, 0, 2)  # same pixels, other strides
    write_png(tmp_path / "a.png", view, 1)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a.png")), img)


def test_bad_input_raises() -> None:
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        encode_png(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        encode_png(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="level"):
        encode_png(np.zeros((4, 4, 3), np.uint8), 10)
