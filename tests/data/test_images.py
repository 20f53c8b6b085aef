"""Safe image loading: modes are converted to RGB uint8; missing or corrupt files name the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clvnet.data.images import image_size, load_image
from clvnet.data.record import DataError


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P"])
def test_modes_become_rgb_uint8(tmp_path: Path, mode: str) -> None:
    Image.new(mode, (7, 5), 3 if mode in ("L", "P") else (10, 20, 30, 255)[: len(mode)]).save(tmp_path / "a.png")
    arr = load_image(tmp_path / "a.png")
    assert arr.shape == (5, 7, 3) and arr.dtype == np.uint8
    assert image_size(tmp_path / "a.png") == (5, 7)


def test_16_bit_is_rescaled(tmp_path: Path) -> None:
    a = np.zeros((4, 6), np.uint16)
    a[0, 0] = 4000
    a[1, 1] = 2000
    Image.fromarray(a).save(tmp_path / "d.png")
    arr = load_image(tmp_path / "d.png")
    assert arr.shape == (4, 6, 3) and arr[0, 0, 0] == 255 and arr[1, 1, 1] == 127 and arr[2, 2, 2] == 0


def test_missing_truncated_and_non_image(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.png: image file not found"):
        load_image(tmp_path / "nope.png")
    Image.new("RGB", (64, 64), (1, 2, 3)).save(tmp_path / "full.jpg", quality=90)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut\.jpg: cannot decode image"):
        load_image(tmp_path / "cut.jpg")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(DataError, match=r"text\.png"):
        load_image(tmp_path / "text.png")
    with pytest.raises(DataError, match=r"text\.png: cannot read image header"):
        image_size(tmp_path / "text.png")
