"""Merge the part files into ``OUT/predictions.gpkg`` (layers ``boxes`` and ``phrases``) and GeoParquet.

Records are streamed from the parts and written in chunks of :data:`CHUNK` boxes, so memory does not
grow with the number of boxes. A key found twice (only possible if two runs shared an output folder at
the same time) is written once. The GeoPackage is written under a temporary name and renamed into place.
GeoParquet (``--format parquet``): ``predictions_boxes.parquet`` and ``predictions_phrases.parquet``,
geometry as WKB with GeoParquet 1.0 ``geo`` metadata (written with ``pyarrow``, no GDAL Parquet driver needed).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from clvnet.inference.archive.parts import iter_records
from clvnet.inference.archive.rows import BOX_FIELDS, PHRASE_FIELDS

CHUNK = 1000
GPKG_NAME = "predictions.gpkg"
_NP = {"str": object, "float": np.float64, "int": np.int64, "bool": np.bool_}


def _chunks(out: Path) -> Iterator[tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    seen: set[str] = set()
    boxes: list[dict[str, Any]] = []
    phrases: list[dict[str, Any]] = []
    for rec in iter_records(out):
        if rec["key"] in seen:
            continue
        seen.add(rec["key"])
        boxes.append(rec["box"])
        phrases.extend(rec["phrases"])
        if len(boxes) >= CHUNK:
            yield boxes, phrases
            boxes, phrases = [], []
    if boxes:
        yield boxes, phrases


def _columns(rows: list[dict[str, Any]], fields: tuple[tuple[str, str], ...]) -> list[np.ndarray]:
    cols: list[np.ndarray] = []
    for name, kind in fields:
        vals = [r.get(name) for r in rows]
        if kind == "float":
            vals = [np.nan if v is None else v for v in vals]
        cols.append(np.asarray(vals, dtype=_NP[kind]))
    return cols


def _wkb(rows: list[dict[str, Any]]) -> np.ndarray:
    return np.asarray([bytes.fromhex(r["geometry"]) for r in rows], dtype=object)


def write_gpkg(out: Path, crs: Any) -> tuple[Path, int, int]:
    """Write ``OUT/predictions.gpkg`` from the parts; returns (path, boxes, phrases)."""
    import logging

    import pyogrio.raw

    logging.getLogger("pyogrio").setLevel(logging.WARNING)  # one "Created N records" line per chunk otherwise
    final = out / GPKG_NAME
    tmp = out / "predictions.tmp.gpkg"  # GDAL wants the .gpkg extension
    tmp.unlink(missing_ok=True)
    wkt = crs.to_wkt()
    n_box = n_phr = 0
    for boxes, phrases in _chunks(out):
        for layer, rows, fields, gtype in (("boxes", boxes, BOX_FIELDS, "Polygon"),
                                           ("phrases", phrases, PHRASE_FIELDS, "MultiPolygon")):
            if not rows:
                continue
            append = (n_box if layer == "boxes" else n_phr) > 0
            pyogrio.raw.write(tmp, _wkb(rows), _columns(rows, fields), [f for f, _ in fields], layer=layer,
                              driver="GPKG", geometry_type=gtype, crs=wkt, append=append)
        n_box += len(boxes)
        n_phr += len(phrases)
    if n_box and not n_phr:  # an empty phrases layer, so the contract's two layers always exist
        pyogrio.raw.write(tmp, np.asarray([], dtype=object), _columns([], PHRASE_FIELDS),
                          [f for f, _ in PHRASE_FIELDS], layer="phrases", driver="GPKG",
                          geometry_type="MultiPolygon", crs=wkt, append=True)
    if not n_box:
        raise ValueError(f"{out}: the part files hold no finished boxes; nothing to merge")
    tmp.replace(final)
    return final, n_box, n_phr


def _arrow_schema(fields: tuple[tuple[str, str], ...], crs: Any, gtype: str) -> Any:
    import pyarrow as pa
    from pyproj import CRS as ProjCRS

    types = {"str": pa.string(), "float": pa.float64(), "int": pa.int64(), "bool": pa.bool_()}
    geo = {"version": "1.0.0", "primary_column": "geometry",
           "columns": {"geometry": {"encoding": "WKB", "geometry_types": [gtype],
                                    "crs": ProjCRS.from_wkt(crs.to_wkt()).to_json_dict()}}}
    return pa.schema([pa.field(n, types[k]) for n, k in fields] + [pa.field("geometry", pa.binary())],
                     metadata={b"geo": json.dumps(geo).encode()})


def write_parquet(out: Path, crs: Any) -> list[Path]:
    """Write ``predictions_boxes.parquet`` and ``predictions_phrases.parquet`` (GeoParquet 1.0) from the parts."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = {"boxes": out / "predictions_boxes.parquet", "phrases": out / "predictions_phrases.parquet"}
    specs = {"boxes": (BOX_FIELDS, "Polygon"), "phrases": (PHRASE_FIELDS, "MultiPolygon")}
    writers = {k: pq.ParquetWriter(str(p) + ".tmp", _arrow_schema(specs[k][0], crs, specs[k][1]))
               for k, p in paths.items()}
    try:
        for boxes, phrases in _chunks(out):
            for k, rows in (("boxes", boxes), ("phrases", phrases)):
                fields = specs[k][0]
                arrays = [pa.array(c.tolist()) for c in _columns(rows, fields)]
                arrays.append(pa.array([bytes.fromhex(r["geometry"]) for r in rows], type=pa.binary()))
                writers[k].write_table(pa.Table.from_arrays(arrays, schema=writers[k].schema))
    finally:
        for w in writers.values():
            w.close()
    for p in paths.values():
        Path(str(p) + ".tmp").replace(p)
    return list(paths.values())
