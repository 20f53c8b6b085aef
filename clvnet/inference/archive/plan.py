"""What to predict: each raster's georeferencing, and the boxes per raster (``--grid`` or ``--boxes``).

A run is a list of :class:`RasterJob` (one raster and its boxes). A box has an id that names its
per-box files and its row (``<raster stem>_<feature id>``), checked by the project's one id sanitiser
(:func:`clvnet.data.ids.safe_id`) and unique across the run, before the model is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clvnet.data.record import DataError

PixelBox = tuple[float, float, float, float]


@dataclass(frozen=True)
class RasterInfo:
    """A raster's size and georeferencing, read from its header only."""

    path: Path
    width: int
    height: int
    crs: Any            # rasterio CRS or None
    transform: Any      # affine.Affine or None

    @property
    def is_georeferenced(self) -> bool:
        return self.crs is not None and self.transform is not None

    @property
    def key(self) -> str:
        """The raster's part of a manifest key: its absolute path."""
        return str(self.path.resolve())


@dataclass(frozen=True)
class BoxItem:
    """One box to predict: ``box_id`` (file-name safe), ``feature_id`` (vector id or tile id), pixel box."""

    box_id: str
    feature_id: str
    box: PixelBox
    clipped: bool = False
    box_crs: str | None = None  # the box is in map coordinates of this CRS (``--boxes`` lines with box_crs)


@dataclass
class RasterJob:
    """A raster and its boxes (boxes of one raster always run on one rank)."""

    raster: RasterInfo
    boxes: list[BoxItem] = field(default_factory=list)
    query: str | None = None


def read_info(path: Path) -> RasterInfo:
    """Header-only read of ``path`` through rasterio.

    Raises:
        DataError: the file cannot be opened as a raster (names it).
    """
    import warnings

    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as ds:
                georef = ds.crs is not None and not ds.transform.is_identity
                return RasterInfo(path=path, width=int(ds.width), height=int(ds.height),
                                  crs=ds.crs if georef else None, transform=ds.transform if georef else None)
    except rasterio.errors.RasterioIOError as exc:
        raise DataError(f"cannot open raster: {exc}", file=path) from None


def grid_positions(length: int, size: int, stride: int) -> list[int]:
    """Tile starts along one axis: every ``stride`` px, the last tile moved back to end at the edge.

    An axis shorter than ``size`` has one tile starting at 0 (the tile is then the whole axis).
    """
    if length <= size:
        return [0]
    starts = list(range(0, length - size, stride))
    if starts[-1] != length - size:
        starts.append(length - size)
    return starts


def grid_jobs(rasters: list[RasterInfo], size: int, overlap: int) -> list[RasterJob]:
    """``--grid SIZE --grid-overlap PX``: every tile of every raster; ids ``<stem>_x<x0>_y<y0>``."""
    if size < 16:
        raise ValueError(f"--grid {size}: the tile size must be at least 16 px")
    if not 0 <= overlap < size:
        raise ValueError(f"--grid-overlap {overlap}: must be >= 0 and smaller than --grid {size}")
    jobs = []
    for r in rasters:
        boxes = []
        for y0 in grid_positions(r.height, size, size - overlap):
            for x0 in grid_positions(r.width, size, size - overlap):
                x1, y1 = min(r.width, x0 + size), min(r.height, y0 + size)
                tile = f"x{x0}_y{y0}"
                boxes.append(BoxItem(box_id=f"{r.path.stem}_{tile}", feature_id=tile,
                                     box=(float(x0), float(y0), float(x1), float(y1))))
        jobs.append(RasterJob(raster=r, boxes=boxes))
    return jobs


def boxes_jobs(tasks: list[Any], infos: dict[Path, RasterInfo]) -> list[RasterJob]:
    """``--boxes BOXES.jsonl`` tasks (parsed by the one-image CLI's batch reader) as raster jobs."""
    jobs = []
    for t in tasks:
        if t.error is not None and t.image in infos and not t.boxes:
            continue  # a raster of --images that the JSONL gives no box: nothing to do there
        if t.error is not None:
            raise DataError(t.error)
        info = infos.get(t.image) or read_info(t.image)
        boxes = [BoxItem(box_id=i, feature_id=i, box=(b[0], b[1], b[2], b[3]), box_crs=t.box_crs)
                 for i, b in zip(t.ids, t.boxes)]
        jobs.append(RasterJob(raster=info, boxes=boxes, query=t.query))
    return jobs


def check_ids(jobs: list[RasterJob], source: Path | str | None) -> None:
    """Every box id names files: a plain file name (the project's sanitiser) and unique ignoring case.

    Raises:
        DataError: naming ``source`` (the vector file, or ``--grid``), the raster and the id.
    """
    from clvnet.data.ids import check_unique_ids, safe_id

    pairs = []
    for job in jobs:
        for b in job.boxes:
            where = f"{job.raster.path.name} feature {b.feature_id}"
            safe_id(b.box_id, file=source, record=where)
            pairs.append((b.box_id, where))
    check_unique_ids(pairs, file=source)


def output_crs(rasters: list[RasterInfo], crs_arg: str | None) -> Any:
    """``--crs``, or the first raster's CRS; every raster must be georeferenced for the layer outputs.

    Raises:
        ValueError: a raster is not georeferenced (names it), or ``--crs`` is not a CRS.
    """
    from clvnet.inference.geo import parse_crs

    for r in rasters:
        if not r.is_georeferenced:
            raise ValueError(f"--images: {r.path} is not georeferenced (no CRS or geotransform); the GeoPackage "
                             "and GeoParquet outputs need map coordinates (use --format json,png for plain images)")
    if crs_arg:
        return parse_crs(crs_arg, "--crs")
    return rasters[0].crs
