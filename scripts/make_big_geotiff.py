"""Write a large synthetic georeferenced GeoTIFF blockwise (tiled, deflate), for memory and speed checks.

The whole raster is never held in memory: it is written one row of tiles at a time. The content is a
cheap procedural "scene" (fields, roads, buildings) so that it compresses like real imagery.

Example::

    python scripts/make_big_geotiff.py /tmp/big.tif --size 20000 --bands 3 --dtype uint16
    python scripts/make_big_geotiff.py /tmp/big_ovr.tif --size 20000 --overviews
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def _block(y0: int, h: int, w: int, bands: int, dtype: str, seed: int) -> np.ndarray:
    yy, xx = np.mgrid[y0:y0 + h, 0:w].astype(np.float32)
    field = 0.5 + 0.25 * np.sin(xx / 731.0) * np.cos(yy / 517.0)
    roads = ((np.abs((xx % 2048) - 1024) < 12) | (np.abs((yy % 1536) - 768) < 10)).astype(np.float32)
    buildings = (((xx // 64 + yy // 64) % 7 == 0) & ((xx % 64) < 40) & ((yy % 64) < 40)).astype(np.float32)
    noise = np.random.default_rng(seed + y0).normal(0.0, 0.02, size=(h, w)).astype(np.float32)
    base = np.clip(field * (1 - roads) + 0.85 * roads, 0, 1)
    base = np.where(buildings > 0, 0.3 + 0.5 * ((xx // 64) % 3) / 2.0, base) + noise
    scale = 255.0 if dtype == "uint8" else 4095.0  # 12-bit data in 16-bit containers, as many sensors
    out = np.empty((bands, h, w), dtype=dtype)
    for b in range(bands):
        out[b] = np.clip((base * (0.8 + 0.1 * b)) * scale, 0, scale).astype(dtype)
    return out


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path, help="output GeoTIFF (put it under /tmp; never commit it)")
    p.add_argument("--size", type=int, default=20000, help="width and height in pixels")
    p.add_argument("--bands", type=int, default=3)
    p.add_argument("--dtype", choices=["uint8", "uint16"], default="uint16")
    p.add_argument("--block", type=int, default=512, help="tile size")
    p.add_argument("--pixel", type=float, default=0.3, help="pixel size in metres (EPSG:32633)")
    p.add_argument("--overviews", action="store_true", help="also build internal overviews 2..64")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    import rasterio
    from affine import Affine
    from rasterio.enums import ColorInterp, Resampling
    from rasterio.windows import Window

    n, blk = args.size, args.block
    profile = {"driver": "GTiff", "width": n, "height": n, "count": args.bands, "dtype": args.dtype,
               "crs": "EPSG:32633", "transform": Affine(args.pixel, 0.0, 400000.0, 0.0, -args.pixel, 4700000.0),
               "tiled": True, "blockxsize": blk, "blockysize": blk, "compress": "deflate", "BIGTIFF": "IF_SAFER"}
    t0 = time.perf_counter()
    with rasterio.Env(GDAL_CACHEMAX=256 * 2**20), rasterio.open(args.out, "w", **profile) as dst:
        for y0 in range(0, n, blk):
            h = min(blk, n - y0)
            dst.write(_block(y0, h, n, args.bands, args.dtype, args.seed), window=Window(0, y0, n, h))
        if args.bands >= 3:
            dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue] + \
                [ColorInterp.undefined] * (args.bands - 3)
    if args.overviews:
        with rasterio.Env(GDAL_CACHEMAX=256 * 2**20), rasterio.open(args.out, "r+") as dst:
            dst.build_overviews([2, 4, 8, 16, 32, 64], Resampling.average)
    size = args.out.stat().st_size / 2**20
    print(f"wrote {args.out}: {n}x{n}x{args.bands} {args.dtype}, {size:.0f} MiB, {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
