"""Reading images of any size and kind: PNG, JPEG, TIFF and GeoTIFF, 8/16-bit or float, 1 to N bands.

:func:`open_raster` returns a :class:`Raster` that never loads a large scene whole:

- the *preview* (whole image, longest side at most ``preview_max``) is a decimated read, which GDAL
  serves from an overview when the file has one; it gives the model's global view, the overlay
  background and the stretch statistics;
- a box region is a *window* read at native resolution (decimated only when the window itself is huge).

Files go through rasterio (the ``geo`` extra) when it is installed; plain images fall back to Pillow,
which loads the whole picture, so Pillow's decompression-bomb limit applies there. A JPEG without
georeferencing that Pillow can hold is decoded by Pillow, as the training data loader does (GDAL's and
Pillow's JPEG decoders differ by a few grey levels). Set
``CLVNET_NO_RASTERIO=1`` (or ``RasterOptions(use_rasterio=False)``) to force the Pillow path.

Bands are 1-based as in GDAL (``--bands 3,2,1``). The default is the bands whose colour interpretation
is red, green, blue, else the first three (a single band is repeated as grey). Non-8-bit data are
percentile-stretched per band (2-98 % by default) with statistics from the preview; nodata pixels
(the raster's nodata value, alpha, or NaN) are excluded from the statistics and painted black.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from PIL import Image, UnidentifiedImageError

from clvnet.data.record import DataError

Window = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels, x1/y1 exclusive
GDAL_CACHE_BYTES = 256 * 2**20  # bound GDAL's block cache (default is 5 % of RAM)


@dataclass
class RasterOptions:
    """How to turn a raster into 8-bit RGB.

    Attributes:
        bands: 1-based band indexes for R, G, B (one index = grey); None = colour interpretation or first three.
        stretch: ``auto`` (percentile for non-uint8 data, none for uint8), ``percentile`` or ``none``.
        percentiles: low / high percentiles of the stretch.
        use_rasterio: None = use rasterio when importable (unless ``CLVNET_NO_RASTERIO=1``); False = Pillow only.
        preview_max: longest side of the decimated whole-image read.
    """

    bands: tuple[int, ...] | None = None
    stretch: Literal["auto", "percentile", "none"] = "auto"
    percentiles: tuple[float, float] = (2.0, 98.0)
    use_rasterio: bool | None = None
    preview_max: int = 2048

    def __post_init__(self) -> None:
        lo, hi = self.percentiles
        if not 0.0 <= lo < hi <= 100.0:
            raise ValueError(f"--stretch-percentiles must satisfy 0 <= low < high <= 100, got {lo}, {hi}")
        if self.stretch not in ("auto", "percentile", "none"):
            raise ValueError(f"--stretch must be auto, percentile or none, got {self.stretch!r}")
        if self.bands is not None and len(self.bands) not in (1, 3):
            raise ValueError(f"--bands takes one or three band indexes, got {list(self.bands)}")


def rasterio_enabled(options: RasterOptions | None = None) -> bool:
    """Whether the rasterio path is used (installed, not disabled by option or ``CLVNET_NO_RASTERIO``)."""
    if options is not None and options.use_rasterio is False:
        return False
    if os.environ.get("CLVNET_NO_RASTERIO", "") not in ("", "0"):
        return False
    try:
        import rasterio  # noqa: F401
    except ImportError:
        if options is not None and options.use_rasterio:
            raise ImportError("rasterio is required (pip install 'clvnet[geo]')") from None
        return False
    return True


class _Backend(Protocol):
    height: int
    width: int
    count: int
    dtype: np.dtype
    crs: Any
    transform: Any

    def default_bands(self) -> list[int]: ...
    def read(self, bands: list[int], window: Window, out_shape: tuple[int, int]) -> np.ndarray: ...
    def read_valid(self, window: Window, out_shape: tuple[int, int]) -> np.ndarray | None: ...
    def close(self) -> None: ...


def _resize_plane(plane: np.ndarray, out_shape: tuple[int, int], resample: Image.Resampling) -> np.ndarray:
    h, w = out_shape
    if plane.shape == (h, w):
        return plane
    im = Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32), mode="F")
    return np.asarray(im.resize((w, h), resample), dtype=np.float32)


class _ArrayBackend:
    """An image held in memory as (H, W, C): numpy input, PIL input, or the Pillow fallback."""

    def __init__(self, arr: np.ndarray, valid: np.ndarray | None = None) -> None:
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if arr.ndim != 3 or arr.shape[0] == 0 or arr.shape[1] == 0 or arr.shape[2] == 0:
            raise ValueError(f"image array must be (H, W) or (H, W, C) and non-empty, got shape {arr.shape}")
        self.arr = arr
        self.height, self.width, self.count = (int(v) for v in arr.shape)
        self.dtype = arr.dtype
        self.crs, self.transform = None, None
        self._valid = valid
        if np.issubdtype(arr.dtype, np.floating) and self._valid is None:
            finite = np.isfinite(arr).all(axis=2)
            self._valid = None if finite.all() else finite

    def default_bands(self) -> list[int]:
        return [1, 2, 3] if self.count >= 3 else [1]

    def read(self, bands: list[int], window: Window, out_shape: tuple[int, int]) -> np.ndarray:
        x0, y0, x1, y1 = window
        sub = self.arr[y0:y1, x0:x1]
        if (y1 - y0, x1 - x0) == tuple(out_shape):
            return np.stack([sub[:, :, b - 1] for b in bands])
        return np.stack([_resize_plane(sub[:, :, b - 1], out_shape, Image.Resampling.BOX) for b in bands])

    def read_valid(self, window: Window, out_shape: tuple[int, int]) -> np.ndarray | None:
        if self._valid is None:
            return None
        x0, y0, x1, y1 = window
        sub = self._valid[y0:y1, x0:x1].astype(np.float32)
        return _resize_plane(sub, out_shape, Image.Resampling.NEAREST) > 0.5

    def close(self) -> None:
        pass


class _RasterioBackend:
    """A file read through rasterio: windowed and decimated reads, overviews, CRS, nodata masks."""

    def __init__(self, path: Path) -> None:
        import rasterio
        from rasterio.enums import ColorInterp, MaskFlags
        from rasterio.errors import NotGeoreferencedWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            self.ds = rasterio.open(path)
        self.path = path
        ds = self.ds
        self.height, self.width, self.count = int(ds.height), int(ds.width), int(ds.count)
        self.dtype = np.dtype(ds.dtypes[0])
        self.crs = ds.crs
        self.transform = ds.transform if (ds.crs is not None and not ds.transform.is_identity) else None
        self._interp = list(ds.colorinterp)
        self._palette = self.count == 1 and self._interp[0] == ColorInterp.palette
        flags = ds.mask_flag_enums
        self._all_valid = all(f == [MaskFlags.all_valid] for f in flags)
        self._colormap = None
        if self._palette:
            cmap = ds.colormap(1)
            lut = np.zeros((max(256, max(cmap) + 1), 3), dtype=np.uint8)
            for k, v in cmap.items():
                lut[k] = v[:3]
            self._colormap = lut

    def default_bands(self) -> list[int]:
        from rasterio.enums import ColorInterp

        if self._palette:
            return [1]
        idx = {ci: i + 1 for i, ci in enumerate(self._interp)}
        rgb = [idx.get(ColorInterp.red), idx.get(ColorInterp.green), idx.get(ColorInterp.blue)]
        if all(b is not None for b in rgb):
            return [int(b) for b in rgb if b is not None]
        return [1, 2, 3] if self.count >= 3 else [1]

    def read(self, bands: list[int], window: Window, out_shape: tuple[int, int]) -> np.ndarray:
        import rasterio
        from rasterio.enums import Resampling
        from rasterio.windows import Window as RWindow

        x0, y0, x1, y1 = window
        native = (y1 - y0, x1 - x0) == tuple(out_shape)
        resampling = Resampling.nearest if (native or self._palette) else Resampling.average
        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES), self._read_errors(window):
            data = self.ds.read(bands, window=RWindow(x0, y0, x1 - x0, y1 - y0),
                                out_shape=(len(bands), *out_shape), resampling=resampling)
        if self._colormap is not None:
            return np.moveaxis(self._colormap[data[0]], -1, 0)
        return data

    def read_valid(self, window: Window, out_shape: tuple[int, int]) -> np.ndarray | None:
        import rasterio
        from rasterio.enums import Resampling
        from rasterio.windows import Window as RWindow

        floating = np.issubdtype(self.dtype, np.floating)
        if self._all_valid and not floating:
            return None
        x0, y0, x1, y1 = window
        rwin = RWindow(x0, y0, x1 - x0, y1 - y0)
        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES), self._read_errors(window):
            valid = self.ds.dataset_mask(window=rwin, out_shape=out_shape, resampling=Resampling.nearest) > 0
            if floating:  # NaN / inf count as nodata even without a declared nodata value
                data = self.ds.read(window=rwin, out_shape=(self.count, *out_shape), resampling=Resampling.nearest)
                valid &= np.isfinite(data).all(axis=0)
        return valid

    @contextlib.contextmanager
    def _read_errors(self, window: Window) -> Iterator[None]:
        """A failed read (truncated file, header promising more pixels than the file holds) names the file."""
        from rasterio.errors import RasterioError

        try:
            yield
        except RasterioError as exc:
            cause = f" ({exc.__cause__})" if exc.__cause__ is not None else ""
            raise DataError(f"cannot read pixels {list(window)} of this {self.width}x{self.height} image: {exc}"
                            f"{cause}; the file is truncated or corrupt", file=self.path) from None

    def close(self) -> None:
        self.ds.close()


def _pillow_array(path: Path, rasterio_failed: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Decode a plain image with Pillow into (H, W, C) and an optional validity mask (from alpha).

    ``rasterio_failed``: rasterio was tried and could not read the file (so the error does not advise
    installing it).
    """
    limit = Image.MAX_IMAGE_PIXELS
    hint = ("" if rasterio_failed else
            ". Install rasterio (pip install 'clvnet[geo]') to read it in windows")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(path)
        except Image.DecompressionBombError as exc:
            raise DataError(f"{exc}. This is above Pillow's decompression-bomb limit{hint}", file=path) from None
    with im:
        w, h = im.size
        if limit is not None and w * h > limit:
            raise DataError(
                f"image is {w}x{h} = {w * h:,} pixels, above Pillow's decompression-bomb limit of {limit:,}; "
                f"Pillow would load it whole{hint}", file=path)
        im.load()
        pic: Image.Image = im.convert("RGBA") if im.mode == "P" else im
        if pic.mode in ("RGBA", "LA", "PA"):
            arr = np.asarray(pic)
            return arr[:, :, :-1], arr[:, :, -1] > 0
        if pic.mode in ("1", "CMYK", "YCbCr", "LAB", "HSV"):
            return np.asarray(pic.convert("RGB")), None
        return np.asarray(pic), None


@dataclass
class Preview:
    """The whole image, decimated so that its longest side is at most ``preview_max``.

    Attributes:
        rgb: (h, w, 3) uint8 after band selection and stretch; nodata is black.
        valid: (h, w) bool, False on nodata; None when the raster has no nodata.
    """

    rgb: np.ndarray
    valid: np.ndarray | None


@dataclass
class Raster:
    """An opened image: metadata, band selection, stretch and windowed reads. Use :func:`open_raster`."""

    name: str
    path: Path | None
    backend: Any
    options: RasterOptions
    bands: list[int]
    identity: str
    _preview: Preview | None = field(default=None, repr=False)
    _stats: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @property
    def height(self) -> int:
        return int(self.backend.height)

    @property
    def width(self) -> int:
        return int(self.backend.width)

    @property
    def count(self) -> int:
        return int(self.backend.count)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.backend.dtype)

    @property
    def crs(self) -> Any:
        """The rasterio CRS, or None (always None on the Pillow / array path)."""
        return self.backend.crs

    @property
    def transform(self) -> Any:
        """Affine pixel -> map transform, or None when the raster is not georeferenced."""
        return self.backend.transform

    @property
    def is_georeferenced(self) -> bool:
        return self.crs is not None and self.transform is not None

    def preview_shape(self) -> tuple[int, int]:
        """(h, w) of the preview: the image scaled so that its longest side is at most ``preview_max``."""
        s = min(1.0, self.options.preview_max / max(self.height, self.width))
        return max(1, round(self.height * s)), max(1, round(self.width * s))

    def _stretch_mode(self) -> str:
        if self.options.stretch != "auto":
            return self.options.stretch
        return "none" if self.dtype == np.uint8 else "percentile"

    def _to_uint8(self, data: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
        """(C, h, w) native values -> (h, w, 3) uint8 with the raster's stretch; nodata black."""
        if self._stretch_mode() == "percentile":
            lo, hi = self.stats()
            scaled = (data.astype(np.float32) - lo[:, None, None]) / (hi - lo)[:, None, None]
            out = (np.clip(np.nan_to_num(scaled, nan=0.0), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        elif data.dtype == np.uint8:
            out = data
        elif np.issubdtype(data.dtype, np.integer):
            info = np.iinfo(data.dtype)
            scaled = (data.astype(np.float32) - info.min) / float(info.max - info.min)
            out = (np.clip(scaled, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        else:
            out = (np.clip(np.nan_to_num(data.astype(np.float32), nan=0.0), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        if out.shape[0] == 1:
            out = np.repeat(out, 3, axis=0)
        rgb = np.ascontiguousarray(np.moveaxis(out, 0, -1))
        if valid is not None:
            rgb[~valid] = 0
        return rgb

    def stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-band (low, high) stretch values from the preview's valid pixels (a decimated read)."""
        if self._stats is None:
            h, w = self.preview_shape()
            win = (0, 0, self.width, self.height)
            data = self.backend.read(self.bands, win, (h, w)).astype(np.float32)
            valid = self.backend.read_valid(win, (h, w))
            lo_p, hi_p = self.options.percentiles
            los, his = [], []
            for band in data:
                vals = band[valid] if valid is not None else band.reshape(-1)
                vals = vals[np.isfinite(vals)]
                if vals.size == 0:
                    los.append(0.0)
                    his.append(1.0)
                    continue
                lo, hi = np.percentile(vals, [lo_p, hi_p])
                los.append(float(lo))
                his.append(float(hi) if hi > lo else float(lo) + 1.0)
            self._stats = (np.asarray(los, dtype=np.float32), np.asarray(his, dtype=np.float32))
        return self._stats

    def preview(self) -> Preview:
        """The whole image as 8-bit RGB, decimated (or from an overview) to at most ``preview_max``."""
        if self._preview is None:
            shape = self.preview_shape()
            win = (0, 0, self.width, self.height)
            valid = self.backend.read_valid(win, shape)
            rgb = self._to_uint8(self.backend.read(self.bands, win, shape), valid)
            self._preview = Preview(rgb=rgb, valid=valid)
        return self._preview

    def read_rgb(self, window: Window, max_side: int | None = None) -> np.ndarray:
        """A window as (h, w, 3) uint8, at native resolution unless its longest side exceeds ``max_side``."""
        x0, y0, x1, y1 = window
        h, w = y1 - y0, x1 - x0
        if max_side is not None and max(h, w) > max_side:
            s = max_side / max(h, w)
            h, w = max(1, round(h * s)), max(1, round(w * s))
        return self._to_uint8(self.backend.read(self.bands, window, (h, w)), self.backend.read_valid(window, (h, w)))

    def read_valid(self, window: Window, out_shape: tuple[int, int] | None = None) -> np.ndarray | None:
        """Validity (False = nodata) of a window, native unless ``out_shape``; None when all pixels are valid."""
        x0, y0, x1, y1 = window
        return self.backend.read_valid(window, out_shape or (y1 - y0, x1 - x0))

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Raster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _file_identity(path: Path, options: RasterOptions) -> str:
    st = path.stat()
    return f"file:{path.resolve()}:{st.st_size}:{st.st_mtime_ns}:{options}"


def _prefer_pillow(backend: _RasterioBackend) -> bool:
    """Plain JPEGs go through Pillow, as in training: libjpeg decoders differ slightly (chroma upsampling)."""
    limit = Image.MAX_IMAGE_PIXELS
    small = limit is None or backend.width * backend.height <= limit
    return backend.ds.driver == "JPEG" and backend.crs is None and small


def _check_bands(bands: tuple[int, ...] | None, count: int, name: str) -> None:
    if bands is None:
        return
    bad = [b for b in bands if not 1 <= b <= count]
    if bad:
        raise ValueError(f"--bands {','.join(map(str, bands))}: band(s) {bad} out of range for {name}, "
                         f"which has {count} band(s) (bands are 1-based)")


def open_raster(image: str | Path | np.ndarray | Image.Image, options: RasterOptions | None = None) -> Raster:
    """Open a path, a numpy array (H, W[, C]) or a PIL image as a :class:`Raster`.

    Raises:
        DataError: the file is missing or no reader can decode it (names the file).
        ValueError: bad band selection (names ``--bands``), or a malformed array.
    """
    options = options or RasterOptions()
    backend: Any
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB") if image.mode in ("P", "1", "CMYK") else image)
    if isinstance(image, np.ndarray):
        backend = _ArrayBackend(image)
        digest = hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()
        name, path, identity = "array", None, f"array:{digest}:{image.shape}:{image.dtype}:{options}"
    else:
        path = Path(image)
        name = path.name
        if not path.is_file():
            raise DataError("image file not found", file=path)
        backend, errors = None, []
        if rasterio_enabled(options):
            try:
                backend = _RasterioBackend(path)
            except Exception as exc:  # rasterio raises several types for unknown/corrupt files
                errors.append(f"rasterio: {exc}")
            if backend is not None and _prefer_pillow(backend):
                backend.close()
                backend = None
        if backend is None:
            try:
                arr, valid = _pillow_array(path, rasterio_failed=bool(errors))
                backend = _ArrayBackend(arr, valid)
            except DataError as exc:
                if not errors:
                    raise
                errors.append(f"Pillow: {exc.reason}")
            except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
                errors.append(f"Pillow: {exc}")
        if backend is None:
            raise DataError(f"cannot read image (corrupt, truncated or not an image): {'; '.join(errors)}",
                            file=path)
        identity = _file_identity(path, options)
    _check_bands(options.bands, backend.count, name)
    bands = list(options.bands) if options.bands is not None else backend.default_bands()
    return Raster(name=name, path=path, backend=backend, options=options, bands=bands, identity=identity)
