"""Fixtures for the inference tests: GeoTIFF writer, the real reference image, a tiny checkpoint."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from testkit import make_scripted_checkpoint

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO.parent / "shared" / "reference"


@pytest.fixture(scope="session")
def example_png() -> Path:
    """The real 800x800 aerial scene from GeoPixel (read-only reference data)."""
    path = REFERENCE / "geopixeld" / "example1.png"
    if not path.is_file():
        pytest.skip(f"reference image not found: {path}")
    return path


def _write_geotiff(path: Path, data: np.ndarray, *, crs: str | None = "EPSG:32633",
                   origin: tuple[float, float] = (500000.0, 4650000.0), pixel: float = 0.5,
                   nodata: float | None = None, colorinterp: list[Any] | None = None,
                   tiled: bool = False) -> Path:
    import rasterio
    from affine import Affine

    count, h, w = data.shape
    profile: dict[str, Any] = {"driver": "GTiff", "height": h, "width": w, "count": count, "dtype": data.dtype.name}
    if crs is not None:
        profile.update(crs=crs, transform=Affine(pixel, 0.0, origin[0], 0.0, -pixel, origin[1]))
    if nodata is not None:
        profile["nodata"] = nodata
    if tiled:
        profile.update(tiled=True, blockxsize=64, blockysize=64, compress="deflate")
    import warnings

    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data)
            if colorinterp is not None:
                dst.colorinterp = colorinterp
    return path


@pytest.fixture
def write_geotiff() -> Callable[..., Path]:
    """``write_geotiff(path, data (C, H, W), crs=..., pixel=..., nodata=..., colorinterp=...)``."""
    return _write_geotiff


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny scripted CLV-Net saved with ``save_pretrained`` (loaded back through the real code path)."""
    return make_scripted_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny")
