"""``clvnet predict`` on damaged inputs: a truncated weights file, a config.yaml that is not a mapping, a
GeoTIFF whose header promises more pixels than the file holds. Each is a message, never a traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clvnet.cli import main

FAST = ["--max-new-tokens", "8", "--device", "cpu"]


@pytest.fixture
def png(tmp_path: Path) -> Path:
    path = tmp_path / "scene.png"
    Image.fromarray(np.full((48, 64, 3), 90, np.uint8)).save(path)
    return path


def _copy(ckpt: Path, tmp_path: Path) -> Path:
    out = tmp_path / "ckpt"
    shutil.copytree(ckpt, out)
    return out


def test_truncated_weights_are_named(png: Path, tiny_checkpoint: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = _copy(tiny_checkpoint, tmp_path)
    data = (ckpt / "model.safetensors").read_bytes()
    (ckpt / "model.safetensors").write_bytes(data[: len(data) // 2])
    assert main(["predict", str(png), "--checkpoint", str(ckpt), "--box", "1", "1", "20", "20", *FAST]) == 2
    err = capsys.readouterr().err
    assert f"--checkpoint {ckpt}: cannot load the model: model.safetensors is truncated or corrupt" in err, err


@pytest.mark.parametrize("text", ["just a plain string\n", "- a\n- list\n", "42\n"])
def test_config_that_is_not_a_mapping_is_named(png: Path, tiny_checkpoint: Path, tmp_path: Path, text: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = _copy(tiny_checkpoint, tmp_path)
    (ckpt / "config.yaml").write_text(text)
    assert main(["predict", str(png), "--checkpoint", str(ckpt), "--box", "1", "1", "20", "20", *FAST]) == 2
    assert "config.yaml must be a mapping of model settings" in capsys.readouterr().err


def test_header_promising_more_pixels_than_the_file_holds(tiny_checkpoint: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    import warnings

    import rasterio
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.windows import Window

    full = tmp_path / "full.tif"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(full, "w", driver="GTiff", width=60000, height=60000, count=3, dtype="uint8",
                           sparse_ok=True) as ds:
            ds.write(np.zeros((3, 16, 16), np.uint8), window=Window(0, 0, 16, 16))
    cut = tmp_path / "cut.tif"
    cut.write_bytes(full.read_bytes()[:4096])  # the header (with its strip table) and no pixel data
    assert main(["predict", str(cut), "--checkpoint", str(tiny_checkpoint), "--box", "1", "1", "20", "20", *FAST]) == 2
    err = capsys.readouterr().err
    assert "cut.tif" in err and "60000x60000 image" in err and "truncated or corrupt" in err, err
