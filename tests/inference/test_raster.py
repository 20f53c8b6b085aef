"""Reading rasters: band selection, percentile stretch, nodata, windows, the Pillow fallback, bad input."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clvnet.data.record import DataError
from clvnet.inference.raster import RasterOptions, open_raster


def _rgb(h: int = 40, w: int = 60) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def test_png_same_through_rasterio_and_pillow(tmp_path: Path) -> None:
    arr = _rgb()
    path = tmp_path / "a.png"
    Image.fromarray(arr).save(path)
    with open_raster(path) as r1, open_raster(path, RasterOptions(use_rasterio=False)) as r2:
        assert (r1.height, r1.width, r1.count) == (40, 60, 3)
        assert type(r1.backend).__name__ == "_RasterioBackend"
        assert type(r2.backend).__name__ == "_ArrayBackend"
        assert not r1.is_georeferenced and not r2.is_georeferenced
        np.testing.assert_array_equal(r1.preview().rgb, arr)
        np.testing.assert_array_equal(r2.preview().rgb, arr)
        np.testing.assert_array_equal(r1.read_rgb((10, 5, 30, 25)), arr[5:25, 10:30])


def test_jpeg_and_tiff(tmp_path: Path) -> None:
    arr = _rgb()
    Image.fromarray(arr).save(tmp_path / "a.jpg", quality=95)
    Image.fromarray(arr).save(tmp_path / "a.tif")
    with open_raster(tmp_path / "a.jpg") as r:  # a plain JPEG is decoded by Pillow, as in training
        assert type(r.backend).__name__ == "_ArrayBackend"
        np.testing.assert_array_equal(r.preview().rgb, np.asarray(Image.open(tmp_path / "a.jpg").convert("RGB")))
    with open_raster(tmp_path / "a.tif") as r:
        np.testing.assert_array_equal(r.preview().rgb, arr)


def test_env_switch_disables_rasterio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "a.png"
    Image.fromarray(_rgb()).save(path)
    monkeypatch.setenv("CLVNET_NO_RASTERIO", "1")
    with open_raster(path) as r:
        assert type(r.backend).__name__ == "_ArrayBackend"


def test_geotiff_16bit_4band_colorinterp_stretch_nodata(tmp_path: Path, write_geotiff: Callable[..., Path]) -> None:
    from rasterio.enums import ColorInterp

    h, w = 50, 40
    data = np.zeros((4, h, w), dtype=np.uint16)
    ramp = np.linspace(1000, 5000, h * w).reshape(h, w).astype(np.uint16)
    for b in range(4):
        data[b] = ramp + 100 * b
    data[:, :5, :5] = 0  # nodata corner
    path = write_geotiff(tmp_path / "s.tif", data, nodata=0,
                         colorinterp=[ColorInterp.blue, ColorInterp.green, ColorInterp.red, ColorInterp.undefined])
    with open_raster(path) as r:
        assert r.is_georeferenced and r.crs.to_epsg() == 32633
        assert r.bands == [3, 2, 1]  # RGB colour interpretation
        lo, hi = r.stats()
        valid = ramp[~((np.arange(h)[:, None] < 5) & (np.arange(w)[None, :] < 5))]
        assert lo[0] == pytest.approx(np.percentile(valid + 200, 2), rel=1e-4)  # nodata excluded
        assert hi[0] == pytest.approx(np.percentile(valid + 200, 98), rel=1e-4)
        view = r.preview()
        assert view.rgb.dtype == np.uint8 and view.rgb.shape == (h, w, 3)
        assert view.valid is not None and not view.valid[:5, :5].any() and view.valid[5:].all()
        assert (view.rgb[:5, :5] == 0).all()
        frac_white = (view.rgb[..., 0] == 255).mean()
        assert 0.01 < frac_white < 0.04  # about 2 % above the 98th percentile
    with open_raster(path, RasterOptions(bands=(4, 1, 2), percentiles=(0.0, 100.0))) as r:
        assert r.bands == [4, 1, 2]
        assert r.preview().rgb[..., 0].max() == 255


def test_bands_out_of_range_names_argument(tmp_path: Path, write_geotiff: Callable[..., Path]) -> None:
    path = write_geotiff(tmp_path / "s.tif", np.ones((4, 8, 8), dtype=np.uint16))
    with pytest.raises(ValueError, match=r"--bands 5,2,1.*out of range.*s\.tif.*4 band"):
        open_raster(path, RasterOptions(bands=(5, 2, 1)))
    with pytest.raises(ValueError, match="--bands"):
        RasterOptions(bands=(1, 2))


def test_single_band_float_with_nan(tmp_path: Path, write_geotiff: Callable[..., Path]) -> None:
    data = np.linspace(-1, 1, 400, dtype=np.float32).reshape(1, 20, 20)
    data[0, 0, 0] = np.nan
    path = write_geotiff(tmp_path / "f.tif", data, crs=None)
    with open_raster(path) as r:
        view = r.preview()
        assert view.rgb.shape == (20, 20, 3) and (view.rgb[..., 0] == view.rgb[..., 2]).all()
        assert view.valid is not None and not view.valid[0, 0] and view.valid.sum() == 399


def test_decimated_preview_of_large_tiled_raster(tmp_path: Path, write_geotiff: Callable[..., Path]) -> None:
    data = np.random.default_rng(2).integers(0, 255, size=(3, 300, 500), dtype=np.uint8)
    path = write_geotiff(tmp_path / "big.tif", data, tiled=True)
    with open_raster(path, RasterOptions(preview_max=100)) as r:
        assert r.preview().rgb.shape == (60, 100, 3)
        np.testing.assert_array_equal(r.read_rgb((100, 50, 164, 114)), np.moveaxis(data[:, 50:114, 100:164], 0, -1))
        assert r.read_rgb((0, 0, 500, 300), max_side=50).shape == (30, 50, 3)


def test_array_and_pil_inputs() -> None:
    arr = _rgb(30, 20)
    with open_raster(arr) as r1, open_raster(Image.fromarray(arr)) as r2:
        np.testing.assert_array_equal(r1.preview().rgb, arr)
        assert r1.identity == r2.identity
    grey16 = (np.arange(600, dtype=np.uint16) * 50).reshape(30, 20)
    with open_raster(grey16) as r:
        assert r.preview().rgb.shape == (30, 20, 3) and r.bands == [1]


def test_corrupt_and_missing_files_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "corrupt.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(DataError, match=r"corrupt\.png.*cannot read image"):
        open_raster(bad)
    with pytest.raises(DataError, match=r"corrupt\.png"):
        open_raster(bad, RasterOptions(use_rasterio=False))
    with pytest.raises(DataError, match=r"missing\.tif.*not found"):
        open_raster(tmp_path / "missing.tif")


def test_pillow_decompression_bomb_limit_without_rasterio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "large.png"
    Image.fromarray(_rgb(100, 100)).save(path)
    for limit in (4000, 9000):  # Pillow itself raises above twice its limit, warns below
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
        with pytest.raises(DataError, match=r"large\.png.*decompression-bomb limit.*rasterio"):
            open_raster(path, RasterOptions(use_rasterio=False))
    with open_raster(path) as r:  # rasterio reads it in windows, no limit
        assert r.width == 100
