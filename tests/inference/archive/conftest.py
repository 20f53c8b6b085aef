"""Fixtures for archive runs: two adjacent GeoTIFF scenes in UTM 33N, areas of interest in another CRS."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ORIGIN = (500000.0, 4650000.0)  # upper-left corner of scene a.tif (EPSG:32633)
PIXEL = 0.5                     # metres
SIZE = 128                      # pixels: each scene covers 64 m x 64 m; b.tif starts where a.tif ends
FAST = ["--max-new-tokens", "16", "--device", "cpu"]

# areas of interest in UTM metres (xmin, ymin, xmax, ymax): inside a.tif, across the a|b edge, on no scene
AOI = {
    "port-1": (500010.0, 4649970.0, 500030.0, 4649990.0),
    "port-2": (500050.0, 4649960.0, 500080.0, 4649980.0),
    "far": (501000.0, 4649960.0, 501010.0, 4649970.0),
}


def write_scenes(folder: Path, n: int = 2, size: int = SIZE) -> list[Path]:
    """``n`` scenes side by side (west to east), 3-band uint8, tiled; names a.tif, b.tif, ..."""
    import rasterio
    from affine import Affine

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        data = rng.integers(0, 256, size=(3, size, size), dtype=np.uint8)
        origin = (ORIGIN[0] + i * size * PIXEL, ORIGIN[1])
        path = folder / f"{chr(97 + i)}.tif"
        with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=3, dtype="uint8",
                           crs="EPSG:32633", transform=Affine(PIXEL, 0.0, origin[0], 0.0, -PIXEL, origin[1]),
                           tiled=True, blockxsize=64, blockysize=64) as dst:
            dst.write(data)
        paths.append(path)
    return paths


def write_geojson(path: Path, aoi: dict[str, tuple[float, float, float, float]] | None = None,
                  crs: str = "EPSG:4326") -> Path:
    """Rectangles given in UTM 33N, written as polygons in ``crs`` (lon/lat by default) with an ``id`` field."""
    from pyproj import Transformer

    tr = Transformer.from_crs("EPSG:32633", crs, always_xy=True)
    feats: list[dict[str, Any]] = []
    for fid, (x0, y0, x1, y1) in (aoi or AOI).items():
        ring = [tr.transform(x, y) for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0))]
        feats.append({"type": "Feature", "properties": {"id": fid, "name": f"site {fid}"},
                      "geometry": {"type": "Polygon", "coordinates": [[list(p) for p in ring]]}})
    doc: dict[str, Any] = {"type": "FeatureCollection", "features": feats}
    if crs != "EPSG:4326":
        doc["crs"] = {"type": "name", "properties": {"name": f"urn:ogc:def:crs:{crs.replace(':', '::')}"}}
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture
def scenes(tmp_path: Path) -> Path:
    """A folder with a.tif and b.tif."""
    folder = tmp_path / "scenes"
    write_scenes(folder)
    return folder


@pytest.fixture
def aoi(tmp_path: Path) -> Path:
    """The areas of interest of :data:`AOI` as a GeoJSON in EPSG:4326."""
    return write_geojson(tmp_path / "aoi.geojson")


def read_layer(gpkg: Path, layer: str) -> tuple[dict[str, Any], list[Any], dict[str, np.ndarray]]:
    """(meta, shapely geometries, columns by name) of one layer, read with pyogrio."""
    import pyogrio.raw
    import shapely

    meta, _, geoms, fields = pyogrio.raw.read(gpkg, layer=layer)
    return meta, list(shapely.from_wkb(geoms)), dict(zip(meta["fields"], fields))
