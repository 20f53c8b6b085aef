"""``clvnet predict``: caption and segment boxes on one image, or on many in batch mode.

One image::

    clvnet predict scene.tif --checkpoint runs/tiny/final --box 100 200 612 712 --box ... \\
        [--box-crs EPSG:32633] [--out out/] [--format json,png,geojson]

Batch mode (a failure on one image is reported and the rest continue; exit code 1 if any failed)::

    clvnet predict --images 'scenes/*.tif' --boxes boxes.jsonl --checkpoint DIR --out out/

``boxes.jsonl`` has one object per line: ``{"image": "a.tif", "box": [x0, y0, x1, y1]}`` or
``"boxes": [[...], ...]``, optionally ``"id"``, ``"query"`` and ``"box_crs"``. ``image`` is a file name
among ``--images`` or a path (relative to the JSONL's folder). Without ``--out`` the captions are printed,
phrases marked ``[k: phrase]`` (k from 0, as in the overlay legend).

Many scenes (one GeoPackage; ``torchrun`` / ``accelerate launch`` shard it; re-running resumes)::

    clvnet predict --images DIR|GLOB|LIST.txt|CATALOG.json [--stac-asset KEY]
                   (--vector FILE [--vector-layer NAME] | --grid SIZE [--grid-overlap PX] | --boxes BOXES.jsonl)
                   --checkpoint CKPT --out OUT [--format gpkg,parquet,json,png,geojson] [--crs EPSG:XXXX]
    clvnet predict merge OUT        # merge the part files into OUT/predictions.gpkg (rank 0 does it at the end)

Each box's id (``"id"``, with ``_box<k>`` appended when the line has several boxes; default
``<image stem>_box<k>``) names its output files, so it must be a plain file name (no ``/`` or backslash, no control
characters, ``.`` or ``..``; :mod:`clvnet.data.ids`) and unique ignoring case. All ids are checked before the
model is loaded: a bad or duplicate id is an error naming the line, and nothing is written.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clvnet.data.record import DataError, iter_lines

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    """Add the ``predict`` subcommand."""
    p = subparsers.add_parser("predict", help="caption and segment boxes on images of any size",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image", nargs="?", help="image file (PNG, JPEG, TIFF, GeoTIFF); or 'merge' followed by OUT")
    p.add_argument("merge_dir", nargs="?", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--checkpoint", help="checkpoint folder (config.yaml, model.safetensors, tokenizer); required "
                                         "except for 'predict merge OUT'")
    p.add_argument("--box", nargs=4, type=float, action="append", metavar=("X0", "Y0", "X1", "Y1"),
                   help="a box in pixels (or in --box-crs map units: xmin ymin xmax ymax); repeat for more")
    p.add_argument("--box-crs", help="CRS of --box coordinates, e.g. EPSG:4326 (georeferenced input only)")
    p.add_argument("--query", help="text query (default: the model's global + box-centred prompt)")
    p.add_argument("--images", help="batch mode: a folder, a glob, a text file of paths or a STAC catalogue JSON")
    p.add_argument("--stac-asset", help="the asset of each STAC item to read (default: the item's only GeoTIFF)")
    p.add_argument("--vector", type=Path, help="boxes from the features of a vector file (GeoJSON, GeoPackage, "
                                               "Shapefile): each feature's bounds on every raster it intersects")
    p.add_argument("--vector-layer", help="layer of --vector (default: the first)")
    p.add_argument("--vector-id", help="field holding the feature id (default: an 'id' field, else the FID)")
    p.add_argument("--edge", choices=["clip", "skip", "error"], default="clip",
                   help="a --vector feature across a raster edge: clip it to the raster (default), skip it or "
                        "stop with an error; features on no raster are skipped (error with 'error'); both reported")
    p.add_argument("--grid", type=int, help="boxes: every SIZE x SIZE tile of every raster")
    p.add_argument("--grid-overlap", type=int, default=0, help="pixels shared by neighbouring --grid tiles")
    p.add_argument("--crs", help="CRS of predictions.gpkg / GeoParquet (default: the first raster's)")
    p.add_argument("--feature-cache", type=int, default=8,
                   help="image features kept in memory (images; 0 = off: every batch re-encodes its image)")
    p.add_argument("--boxes", type=Path, help="batch mode: JSONL of boxes per image")
    p.add_argument("--out", type=Path, help="output folder (default: print captions to stdout)")
    p.add_argument("--format", default=None,
                   help="comma-separated outputs: json, png, geojson, glamm (default json,png,geojson; "
                        "geojson only for georeferenced input); gpkg, parquet: one layer for many scenes "
                        "(gpkg is the default with --vector / --grid)")
    p.add_argument("--bands", help="1-based bands for R,G,B, e.g. 3,2,1 (default: colour interpretation, "
                                   "else the first three)")
    p.add_argument("--stretch", choices=["auto", "percentile", "none"], default="auto",
                   help="auto = percentile stretch for non-8-bit data")
    p.add_argument("--stretch-percentiles", default="2,98", help="low,high percentiles (default 2,98)")
    p.add_argument("--no-rasterio", action="store_true", help="read with Pillow only (small plain images)")
    p.add_argument("--geojson-crs", help="reproject GeoJSON into this CRS, e.g. EPSG:4326")
    p.add_argument("--simplify", type=float, default=0.5, help="GeoJSON simplification tolerance in pixels")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="let Python code shipped in the checkpoint's model folders run (off by default)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="decoding budget per box")
    p.add_argument("--batch-size", type=int, default=8, help="boxes decoded together")
    p.add_argument("--preview-max", type=int, default=2048,
                   help="longest side of the decimated whole-image read (global view, overlay)")
    p.set_defaults(func=handler)


def _parse_ints(text: str, arg: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise ValueError(f"{arg} {text!r}: expected comma-separated integers, e.g. 3,2,1") from None


def _parse_percentiles(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(t) for t in text.split(","))
    except ValueError:
        raise ValueError(f"--stretch-percentiles {text!r}: expected two numbers low,high, e.g. 2,98") from None
    return lo, hi


@dataclass
class _Task:
    """All boxes of one image."""

    image: Path
    boxes: list[list[float]] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    wheres: list[str] = field(default_factory=list)  # where each id came from, for messages
    query: str | None = None
    box_crs: str | None = None
    error: str | None = None


def _batch_tasks(images: list[Path], boxes_path: Path | None, args: argparse.Namespace) -> list[_Task]:
    if boxes_path is None:
        if not args.box:
            raise ValueError("--images needs --boxes boxes.jsonl (or --box to use the same boxes on every image)")
        return [_Task(image=p, boxes=[list(b) for b in args.box], query=args.query, box_crs=args.box_crs,
                      ids=[f"{p.stem}_box{k}" for k in range(len(args.box))],
                      wheres=[f"image {p.name} box {k}" for k in range(len(args.box))]) for p in images]
    if not boxes_path.is_file():
        raise FileNotFoundError(f"--boxes {boxes_path}: file not found")
    by_name = {p.name: p for p in images}
    tasks: dict[Path, _Task] = {p: _Task(image=p) for p in images}
    extra: list[_Task] = []
    for lineno, line in iter_lines(boxes_path):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            name = str(entry["image"])
            boxes = entry["boxes"] if "boxes" in entry else [entry["box"]]
            boxes = [[float(v) for v in b] for b in boxes]
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise DataError(f"line {lineno} must be {{'image': ..., 'box': [x0, y0, x1, y1]}} or "
                            f"{{'image': ..., 'boxes': [[...], ...]}}: {exc!r}", file=boxes_path,
                            record=f"line {lineno}") from exc
        ident = _entry_id(entry, boxes_path, lineno)
        path = by_name.get(name) or by_name.get(Path(name).name)
        if path is None:
            cand = Path(name) if Path(name).is_absolute() else boxes_path.parent / name
            path = cand.resolve() if cand.is_file() else None
        if path is None:
            extra.append(_Task(image=Path(name), error=f"{boxes_path} line {lineno}: image {name!r} is not among "
                                                       f"--images {args.images} and is not a file"))
            continue
        task = tasks.setdefault(path, _Task(image=path))
        task.query = entry.get("query", task.query if task.query is not None else args.query)
        task.box_crs = entry.get("box_crs", task.box_crs if task.box_crs is not None else args.box_crs)
        for j, b in enumerate(boxes):
            k = len(task.boxes)
            task.boxes.append(b)
            task.ids.append(f"{ident}_box{k}" if ident and len(boxes) > 1 else (ident or f"{path.stem}_box{k}"))
            task.wheres.append(f"line {lineno}" + (f" box {j}" if len(boxes) > 1 else ""))
    for t in tasks.values():
        if not t.boxes:
            t.error = f"no boxes for this image in {boxes_path}"
    return list(tasks.values()) + extra


def _entry_id(entry: dict[str, Any], boxes_path: Path, lineno: int) -> str | None:
    """The optional ``"id"`` of a boxes line as a string (an int id is taken as its digits)."""
    ident = entry.get("id")
    if ident is None or ident == "":
        return None
    if isinstance(ident, bool) or not isinstance(ident, (str, int)):
        raise DataError(f"id must be a string, got {json.dumps(ident)[:60]}", file=boxes_path,
                        record=f"line {lineno}", field="id")
    return str(ident)


def check_task_ids(tasks: list[_Task], boxes_path: Path | None) -> None:
    """Every output id must be a plain file name and unique, checked before anything is predicted or written.

    Raises:
        DataError: naming the boxes file (batch mode), the line and the id.
    """
    from clvnet.data.ids import check_unique_ids, safe_id

    pairs = []
    for t in tasks:
        if t.error is not None:
            continue
        for ident, where in zip(t.ids, t.wheres):
            safe_id(ident, file=boxes_path, record=where)
            pairs.append((ident, where))
    check_unique_ids(pairs, file=boxes_path)


def _formats(args: argparse.Namespace) -> tuple[list[str], bool]:
    from clvnet.inference.outputs import parse_formats

    if args.format is None:
        return ["json", "png", "geojson"], False
    return parse_formats(args.format), True


def _archive_mode(args: argparse.Namespace) -> bool:
    """``--vector``, ``--grid`` or a layer format: the many-scenes run of :mod:`clvnet.inference.archive`."""
    fmts = {t.strip().lower() for t in (args.format or "").split(",")}
    return args.vector is not None or args.grid is not None or bool(fmts & {"gpkg", "parquet"})


def handler(args: argparse.Namespace) -> int:
    """Run ``clvnet predict``; returns 0, or 1 when any image failed in batch mode."""
    from tqdm import tqdm

    from clvnet.inference import outputs
    from clvnet.inference.predictor import Predictor
    from clvnet.inference.raster import RasterOptions

    if args.image == "merge" and args.merge_dir is not None:
        from clvnet.inference.archive.runner import merge, parse_formats

        fmts = [f for f in parse_formats(args.format) if f in ("gpkg", "parquet")]
        if not fmts:
            raise ValueError(f"--format {args.format}: predict merge writes gpkg and/or parquet")
        return merge(args.merge_dir, fmts)
    if args.merge_dir is not None:
        raise ValueError(f"one IMAGE only (got {args.image} and {args.merge_dir}); to merge part files: "
                         "clvnet predict merge OUT")
    if args.checkpoint is None:
        raise ValueError("--checkpoint DIR is required")
    if (args.image is None) == (args.images is None):
        raise ValueError("give either IMAGE or --images DIR_OR_GLOB (batch mode), not both")
    if args.image is not None and not args.box:
        raise ValueError("--box x0 y0 x1 y1 is required (repeat it for several boxes)")
    if args.image is not None and args.boxes is not None:
        raise ValueError("--boxes is for batch mode (--images); for one image give --box")
    if args.boxes is not None and args.box:
        raise ValueError("give either --box (same boxes on every image) or --boxes boxes.jsonl, not both")
    if args.simplify < 0:
        raise ValueError(f"--simplify {args.simplify}: the tolerance must be >= 0 (pixels)")
    if args.max_new_tokens is not None and args.max_new_tokens < 1:
        raise ValueError(f"--max-new-tokens {args.max_new_tokens}: must be >= 1")
    if args.batch_size < 1 or args.preview_max < 16:
        raise ValueError("--batch-size must be >= 1 and --preview-max >= 16")
    options = RasterOptions(bands=_parse_ints(args.bands, "--bands") if args.bands else None,
                            stretch=args.stretch, percentiles=_parse_percentiles(args.stretch_percentiles),
                            use_rasterio=False if args.no_rasterio else None, preview_max=args.preview_max)
    if (args.vector_layer or args.vector_id) and args.vector is None:
        raise ValueError("--vector-layer / --vector-id need --vector FILE")
    if args.feature_cache < 0:
        raise ValueError(f"--feature-cache {args.feature_cache}: must be >= 0 (0 = off)")
    if _archive_mode(args):
        from clvnet.inference.archive.runner import run

        if args.images is None:
            raise ValueError("--vector / --grid / --format gpkg,parquet need --images (a folder, glob, list or "
                             "STAC catalogue)")
        args.raster_options = options
        return run(args)
    formats, explicit = _formats(args)
    geo_opts = outputs.GeoJSONOptions(simplify_px=args.simplify, target_crs=args.geojson_crs)
    if args.geojson_crs:
        from clvnet.inference.geo import parse_crs

        parse_crs(args.geojson_crs, "--geojson-crs")
    if args.image is not None:
        image = Path(args.image)
        if not image.is_file():
            raise FileNotFoundError(f"IMAGE {image}: file not found")
        tasks = [_Task(image=image, boxes=[list(b) for b in args.box], query=args.query, box_crs=args.box_crs,
                       ids=[f"{image.stem}_box{k}" for k in range(len(args.box))],
                       wheres=[f"--box {k}" for k in range(len(args.box))])]
    else:
        from clvnet.inference.archive.sources import list_images

        tasks = _batch_tasks(list_images(args.images, args.stac_asset), args.boxes, args)
    check_task_ids(tasks, args.boxes)
    predictor = Predictor.from_pretrained(args.checkpoint, device=args.device, raster=options,
                                          trust_remote_code=args.trust_remote_code, cache_size=args.feature_cache,
                                          batch_size=args.batch_size, max_new_tokens=args.max_new_tokens)
    from clvnet.models.card import card_line

    print(card_line(args.checkpoint), file=sys.stderr)
    batch = args.images is not None
    failures: list[tuple[str, str]] = []
    bar = tqdm(tasks, desc="predict", unit="image", disable=not batch, file=sys.stderr)
    for task in bar:
        if task.error is not None:
            failures.append((str(task.image), task.error))
            print(f"FAILED {task.image}: {task.error}", file=sys.stderr)
            continue
        try:
            _run_task(predictor, task, options, args, formats, explicit, geo_opts)
        except (ValueError, OSError, DataError, RuntimeError) as exc:
            if not batch:
                raise
            failures.append((str(task.image), str(exc)))
            print(f"FAILED {task.image}: {exc}", file=sys.stderr)
    if batch:
        ok = len(tasks) - len(failures)
        print(f"predict: {ok} of {len(tasks)} image(s) done, {len(failures)} failed", file=sys.stderr)
    return 1 if failures else 0


def _run_task(predictor: Any, task: _Task, options: Any, args: argparse.Namespace, formats: list[str],
              explicit: bool, geo_opts: Any) -> None:
    from clvnet.inference import outputs

    preds = predictor.predict(task.image, task.boxes, query=task.query, box_crs=task.box_crs, ids=task.ids)
    if args.out is None:
        for pred in preds:
            print(outputs.format_text(pred))
        return
    with predictor.open(task.image, options) as raster:
        if "geojson" in formats and not raster.is_georeferenced:
            (log.warning if explicit else log.info)("%s is not georeferenced: no GeoJSON written", task.image)
        fmts = [f for f in formats if f != "geojson" or raster.is_georeferenced]
        for pred in preds:
            written = outputs.write_outputs(pred, raster, args.out, fmts, geo_opts)
            print(f"{pred.id}: " + ", ".join(str(p) for p in written))
