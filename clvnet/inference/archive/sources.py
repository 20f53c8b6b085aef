"""``--images``: a folder, a glob, a text file of paths, or a STAC catalogue / ItemCollection (local files).

- A folder: its image files (by suffix), sorted; not recursive.
- A glob: the matching image files, sorted (quote it in the shell).
- ``LIST.txt`` (any file that is not JSON): one path per line, relative to the list file's folder;
  blank lines and ``#`` comments are skipped; a missing file is an error naming the list and the line.
- ``CATALOG.json``: a STAC Catalog, Collection, ItemCollection or single Item read with ``pystac``; each
  item gives the asset ``--stac-asset KEY`` (default: the item's only GeoTIFF asset). Only local hrefs are
  accepted: a remote href is an error naming the item.
"""

from __future__ import annotations

import glob
import json
from pathlib import Path
from typing import Any

from clvnet.data.record import DataError, iter_lines

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".jp2", ".bmp", ".webp", ".img", ".vrt")
_TIFF_TYPES = ("image/tiff", "image/geotiff", "image/tiff; application=geotiff",
               "image/tiff; application=geotiff; profile=cloud-optimized")


def list_images(spec: str, stac_asset: str | None = None) -> list[Path]:
    """The raster files named by ``--images`` (see the module docstring).

    Raises:
        FileNotFoundError: nothing matched (names the argument), or a listed file is missing.
        DataError: a list or catalogue is malformed (names the file and the line or item).
    """
    path = Path(spec)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    elif path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        files = [path]
    elif path.is_file() and path.suffix.lower() == ".json":
        files = stac_images(path, stac_asset)
    elif path.is_file():
        files = _list_file(path)
    else:
        files = sorted(Path(p) for p in glob.glob(spec)
                       if Path(p).is_file() and Path(p).suffix.lower() in IMAGE_SUFFIXES)
    if stac_asset is not None and not (path.is_file() and path.suffix.lower() == ".json"):
        raise ValueError(f"--stac-asset {stac_asset}: only for a STAC catalogue given as --images CATALOG.json")
    if not files:
        raise FileNotFoundError(f"--images {spec}: no image files found")
    return files


def _list_file(path: Path) -> list[Path]:
    files = []
    for lineno, line in iter_lines(path):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        p = Path(text)
        p = p if p.is_absolute() else path.parent / p
        if not p.is_file():
            raise DataError(f"listed image {text!r} not found (paths are relative to the list file's folder)",
                            file=path, record=f"line {lineno}")
        files.append(p)
    return files


def stac_images(path: Path, asset: str | None) -> list[Path]:
    """Local asset files of every item of a STAC Catalog / Collection / ItemCollection / Item."""
    import pystac

    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"not a JSON file: {exc}", file=path) from None
    kind = doc.get("type") if isinstance(doc, dict) else None
    try:
        if kind == "FeatureCollection":
            items = list(pystac.ItemCollection.from_file(str(path)))
        elif kind == "Feature":
            items = [pystac.Item.from_file(str(path))]
        elif kind in ("Catalog", "Collection"):
            cat = pystac.read_file(str(path))
            items = list(cat.get_items(recursive=True))  # type: ignore[attr-defined]
        else:
            raise DataError(f"not a STAC catalogue, collection, item or ItemCollection (type {kind!r})", file=path)
    except DataError:
        raise
    except Exception as exc:  # pystac raises many types for broken catalogues
        raise DataError(f"cannot read the STAC document: {exc}", file=path) from None
    files = []
    for item in items:
        files.append(_asset_file(item, asset, path))
    if not items:
        raise DataError("the STAC document has no items", file=path)
    return files


def _asset_file(item: Any, key: str | None, catalogue: Path) -> Path:
    assets = dict(item.assets)
    if key is None:
        tiffs = [k for k, a in assets.items() if (a.media_type or "").lower() in _TIFF_TYPES]
        if len(tiffs) != 1:
            raise DataError(f"give --stac-asset KEY: the item has {len(tiffs)} GeoTIFF assets "
                            f"(assets: {', '.join(sorted(assets)) or 'none'})", file=catalogue, record=item.id)
        key = tiffs[0]
    if key not in assets:
        raise DataError(f"--stac-asset {key}: no such asset (assets: {', '.join(sorted(assets)) or 'none'})",
                        file=catalogue, record=item.id)
    href = assets[key].get_absolute_href() or assets[key].href
    if "://" in href and not href.startswith("file://"):
        raise DataError(f"asset {key} is remote ({href}); only local files are read", file=catalogue,
                        record=item.id)
    p = Path(href.removeprefix("file://"))
    if not p.is_file():
        raise DataError(f"asset {key} file {p} not found", file=catalogue, record=item.id)
    return p
