"""Write a folder of N tiled GeoTIFF scenes side by side (and optionally a GeoJSON of areas of interest).

The scenes are 3-band uint8, tiled (256 px blocks, deflate), in UTM 33N (EPSG:32633), placed west to east
so that they touch; the content is a cheap procedural "scene" (fields, roads, buildings). With ``--aoi K``
the script also writes ``aoi.geojson``: K rectangles in lon/lat (EPSG:4326), some across scene edges, one on
no scene, as a user would draw them in QGIS. For the README's "Many scenes" example and the archive benchmark.

Example::

    python scripts/make_tiled_folder.py /tmp/scenes --count 20 --size 2048 --aoi 12
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ORIGIN = (400000.0, 4700000.0)  # upper-left corner of the first scene, EPSG:32633


def scene(size: int, seed: int) -> np.ndarray:
    """(3, size, size) uint8 procedural scene."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    rng = np.random.default_rng(seed)
    fx, fy = rng.uniform(300, 900, size=2)
    base = 0.5 + 0.25 * np.sin(xx / fx) * np.cos(yy / fy)
    roads = (np.abs((xx % 1024) - 512) < 8) | (np.abs((yy % 768) - 384) < 6)
    houses = ((xx // 48 + yy // 48) % 5 == 0) & ((xx % 48) < 30) & ((yy % 48) < 30)
    base = np.where(roads, 0.85, base)
    base = np.where(houses, 0.3 + 0.2 * ((xx // 48) % 3), base)
    base = base + rng.normal(0.0, 0.02, size=base.shape).astype(np.float32)
    return np.stack([np.clip(base * k * 255.0, 0, 255).astype(np.uint8) for k in (0.9, 1.0, 0.8)])


def write_aoi(path: Path, count: int, n_scenes: int, size: int, pixel: float, seed: int) -> Path:
    """``count`` rectangles in EPSG:4326 over the scenes: mostly inside one, every third across an edge, one off."""
    from pyproj import Transformer

    rng = np.random.default_rng(seed)
    tr = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True)
    extent = size * pixel
    feats = []
    for k in range(count):
        w, h = rng.uniform(0.05, 0.2, size=2) * extent
        if k == count - 1:                       # on no scene: south of the strip
            x0, y0 = ORIGIN[0], ORIGIN[1] - 2 * extent
        elif k % 3 == 2 and n_scenes > 1:        # across the edge between two scenes
            x0 = ORIGIN[0] + extent * int(rng.integers(1, n_scenes)) - w / 2
            y0 = ORIGIN[1] - rng.uniform(0.2, 0.8) * extent
        else:
            x0 = ORIGIN[0] + extent * (int(rng.integers(0, n_scenes)) + rng.uniform(0.05, 0.75))
            y0 = ORIGIN[1] - rng.uniform(0.25, 0.95) * extent
        ring = [tr.transform(x, y) for x, y in ((x0, y0), (x0 + w, y0), (x0 + w, y0 + h), (x0, y0 + h), (x0, y0))]
        feats.append({"type": "Feature", "properties": {"id": f"site-{k}"},
                      "geometry": {"type": "Polygon", "coordinates": [[list(p) for p in ring]]}})
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    return path


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path, help="output folder (put it under /tmp; never commit it)")
    p.add_argument("--count", type=int, default=20, help="number of scenes")
    p.add_argument("--size", type=int, default=2048, help="width and height of each scene in pixels")
    p.add_argument("--pixel", type=float, default=0.5, help="pixel size in metres")
    p.add_argument("--aoi", type=int, default=0, help="also write aoi.geojson with this many areas of interest")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    import rasterio
    from affine import Affine

    args.out.mkdir(parents=True, exist_ok=True)
    block = 256 if args.size >= 256 else 16 * max(1, args.size // 16)
    for i in range(args.count):
        x0 = ORIGIN[0] + i * args.size * args.pixel
        profile = {"driver": "GTiff", "width": args.size, "height": args.size, "count": 3, "dtype": "uint8",
                   "crs": "EPSG:32633", "transform": Affine(args.pixel, 0.0, x0, 0.0, -args.pixel, ORIGIN[1]),
                   "tiled": True, "blockxsize": block, "blockysize": block, "compress": "deflate"}
        with rasterio.open(args.out / f"scene_{i:03d}.tif", "w", **profile) as dst:
            dst.write(scene(args.size, args.seed + i))
    print(f"wrote {args.count} scenes of {args.size}x{args.size} px to {args.out}")
    if args.aoi:
        path = write_aoi(args.out / "aoi.geojson", args.aoi, args.count, args.size, args.pixel, args.seed)
        print(f"wrote {path}: {args.aoi} areas of interest in EPSG:4326")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
