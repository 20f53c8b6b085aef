"""``clvnet predict --images ... (--vector | --grid | --boxes) --out OUT``: the archive run, one rank of it.

1. List the rasters (:mod:`.sources`), read their headers, fix the output CRS (``--crs``, else the first raster's).
2. Plan the boxes (:mod:`.vector`, :mod:`.plan`), check every id, report features off or across raster edges.
3. Check ``OUT/job.json`` (same checkpoint, CRS and box source as the earlier run, if any), drop the
   (raster, box) pairs already in the manifest (:mod:`.parts`), take this rank's rasters (:mod:`.shard`).
4. Predict raster by raster, ``--batch-size`` boxes at a time; each batch's rows are appended and fsync'd
   to this rank's part file before the next batch starts (so memory does not grow with the box count).
5. All ranks meet; rank 0 merges the parts into ``OUT/predictions.gpkg`` (and GeoParquet).

A raster that fails (unreadable pixels, ...) is reported and the run goes on; the exit code is then 1,
and a re-run retries exactly the boxes that are missing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from clvnet.data.record import DataError
from clvnet.inference.archive import parts, plan, shard
from clvnet.inference.archive.rows import RowContext, checkpoint_id, prediction_rows, trained_on

LAYER_FORMATS = ("gpkg", "parquet")
FILE_FORMATS = ("json", "png", "geojson", "glamm")
JOB_FILE = "job.json"
REPORT_FILE = "vector_report.jsonl"
MAX_REPORTED = 10


def parse_formats(text: str | None) -> list[str]:
    """``--format`` for an archive run: ``gpkg`` (default), ``parquet`` and the per-box ``json,png,geojson,glamm``."""
    if text is None:
        return ["gpkg"]
    items = list(dict.fromkeys(t.strip().lower() for t in text.split(",") if t.strip()))
    bad = [t for t in items if t not in LAYER_FORMATS + FILE_FORMATS]
    if bad or not items:
        raise ValueError(f"--format {text!r}: unknown format(s) {bad}; choose from "
                         f"{', '.join(LAYER_FORMATS + FILE_FORMATS)}")
    return items


def _plan(args: argparse.Namespace, infos: list[plan.RasterInfo], out: Path, main: bool
          ) -> tuple[list[plan.RasterJob], str, Path | str | None]:
    """(jobs, a description of the box source for job.json, where ids came from for messages)."""
    if args.vector is not None:
        from clvnet.inference.archive import vector

        path = Path(args.vector)
        crs, feats = vector.read_features(path, args.vector_layer, args.vector_id)
        jobs, events = vector.match(path, crs, feats, infos, args.edge)
        if main:
            _report_edges(events, out, path, len(feats), sum(len(j.boxes) for j in jobs))
        return jobs, f"vector:{path.resolve()}:{args.vector_layer}:{args.vector_id}:{args.edge}", path
    if args.grid is not None:
        return plan.grid_jobs(infos, args.grid, args.grid_overlap), f"grid:{args.grid}:{args.grid_overlap}", "--grid"
    from clvnet.inference.cli import _batch_tasks

    by_path = {i.path: i for i in infos}
    tasks = _batch_tasks([i.path for i in infos], args.boxes, args)
    return plan.boxes_jobs(tasks, by_path), f"boxes:{Path(args.boxes).resolve()}", args.boxes


def _report_edges(events: list[Any], out: Path, path: Path, n_feats: int, n_boxes: int) -> None:
    off = [e for e in events if e.kind == "off"]
    edge = [e for e in events if e.kind == "edge"]
    out.mkdir(parents=True, exist_ok=True)
    report = out / REPORT_FILE
    with open(report, "w", encoding="utf-8") as f:
        for e in events:
            f.write(json.dumps(e.to_dict()) + "\n")
    print(f"vector {path}: {n_feats} feature(s) -> {n_boxes} (raster, box) pair(s); {len(edge)} across a raster "
          f"edge, {len(off)} on no raster (listed in {report})", file=sys.stderr)
    for e in events[:MAX_REPORTED]:
        where = f"across the edge of {e.raster}" if e.kind == "edge" else "on no raster"
        print(f"  feature {e.feature_id}: {where}: {e.action}", file=sys.stderr)
    if len(events) > MAX_REPORTED:
        print(f"  ... and {len(events) - MAX_REPORTED} more in {report}", file=sys.stderr)


def _check_job(out: Path, job: dict[str, str], main: bool) -> None:
    """The same output folder must not mix checkpoints, CRSs or box sources."""
    path = out / JOB_FILE
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        diff = [k for k in job if old.get(k) != job[k]]
        if diff:
            raise ValueError(f"--out {out}: {path} records an earlier run with a different "
                             f"{', '.join(diff)} ({'; '.join(f'{k}: {old.get(k)!r}' for k in diff)}); "
                             "use a new --out folder, or delete it to start over")
    elif main:
        out.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(job, indent=1), encoding="utf-8")
        tmp.replace(path)


def merge(out: Path, formats: list[str]) -> int:
    """Merge the part files of ``out`` into the layer outputs; the ``clvnet predict merge DIR`` command."""
    from clvnet.inference.archive import layers
    from clvnet.inference.geo import parse_crs

    job_path = out / JOB_FILE
    if not job_path.is_file():
        raise FileNotFoundError(f"predict merge {out}: no {JOB_FILE} here (not the --out of an archive run)")
    crs = parse_crs(json.loads(job_path.read_text(encoding="utf-8"))["crs"], f"{job_path} crs")
    torn = parts.torn_lines(out)
    if torn:
        print(f"merge: {torn} part file(s) end in an incomplete line (boxes in flight when a run was killed); "
              "ignored, and re-run the same command to predict them", file=sys.stderr)
    if "gpkg" in formats:
        path, nb, npr = layers.write_gpkg(out, crs)
        print(f"wrote {path}: {nb} boxes, {npr} phrases", file=sys.stderr)
    if "parquet" in formats:
        for p in layers.write_parquet(out, crs):
            print(f"wrote {p}", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    """One rank of an archive run (see the module docstring); returns the exit code."""
    from tqdm import tqdm

    from clvnet.inference.archive.sources import list_images
    from clvnet.inference.predictor import Predictor, check_checkpoint

    if args.out is None:
        raise ValueError("--vector / --grid / --format gpkg,parquet need --out OUT (the GeoPackage's folder)")
    if sum(x is not None for x in (args.vector, args.grid, args.boxes)) != 1:
        raise ValueError("give exactly one of --vector FILE, --grid SIZE or --boxes BOXES.jsonl")
    if args.box:
        raise ValueError("--box is for one image; with --images give --vector, --grid or --boxes")
    formats = parse_formats(args.format)
    ranks = shard.from_env()
    out = Path(args.out)
    infos = [plan.read_info(p) for p in list_images(args.images, args.stac_asset)]
    crs = plan.output_crs(infos, args.crs)
    jobs, source, id_source = _plan(args, infos, out, ranks.is_main)
    plan.check_ids(jobs, id_source)
    ckpt = check_checkpoint(args.checkpoint)
    ctx = RowContext(out_crs=crs, checkpoint=checkpoint_id(ckpt), trained_on=trained_on(ckpt),
                     simplify_px=args.simplify)
    _check_job(out, {"checkpoint": ctx.checkpoint, "crs": crs.to_wkt(), "boxes": source}, ranks.is_main)
    done = parts.done_keys(out)
    total = sum(len(j.boxes) for j in jobs)
    pending = [plan.RasterJob(raster=j.raster, query=j.query,
                              boxes=[b for b in j.boxes if parts.box_key(j.raster.key, b.box_id) not in done])
               for j in jobs]
    pending = [j for j in pending if j.boxes]
    mine = shard.assign(pending, ranks)
    device = shard.device_for(ranks, args.device)
    shard.init(ranks, device)
    try:
        n_mine = sum(len(j.boxes) for j in mine)
        if ranks.is_main:
            print(f"predict: {total} (raster, box) pair(s) on {len(infos)} raster(s); {total - sum(len(j.boxes) for j in pending)} "
                  f"already done; {ranks.world} rank(s)", file=sys.stderr)
        failed = 0
        if n_mine:
            predictor = Predictor.from_pretrained(ckpt, device=device, raster=args.raster_options,
                                                  trust_remote_code=args.trust_remote_code,
                                                  batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
                                                  cache_size=args.feature_cache)
            bar = tqdm(total=n_mine, unit="box", desc=f"predict rank {ranks.rank}" if ranks.world > 1 else "predict",
                       file=sys.stderr, position=ranks.rank if ranks.world > 1 else None, smoothing=0.1)
            t0 = time.perf_counter()
            with parts.PartWriter(out, ranks.rank) as writer:
                for job in mine:
                    failed += not _run_job(predictor, job, writer, ctx, args, formats, out, bar)
            bar.close()
            secs = time.perf_counter() - t0
            print(f"predict rank {ranks.rank}: {n_mine} box(es) on {len(mine)} raster(s) in {secs:.2f} s "
                  f"({n_mine / max(secs, 1e-9):.2f} box/s)", file=sys.stderr)
        failed = shard.sum_over_ranks(ranks, failed, device)
        if ranks.is_main:
            layer_formats = [f for f in formats if f in LAYER_FORMATS]
            if layer_formats and parts.done_keys(out):
                merge(out, layer_formats)
            if failed:
                print(f"predict: {failed} raster(s) failed (reported above); re-run the same command to retry "
                      "their missing boxes", file=sys.stderr)
        return 1 if failed else 0
    finally:
        shard.finish(ranks)


def _run_job(predictor: Any, job: plan.RasterJob, writer: parts.PartWriter, ctx: RowContext,
             args: argparse.Namespace, formats: list[str], out: Path, bar: Any) -> bool:
    """All pending boxes of one raster, a batch at a time; False (reported) when the raster failed."""
    from clvnet.inference import outputs

    files = [f for f in formats if f in FILE_FORMATS]
    geo_opts = outputs.GeoJSONOptions(simplify_px=args.simplify, target_crs=args.geojson_crs)
    info = job.raster
    step = predictor.batch_size
    for start in range(0, len(job.boxes), step):
        chunk = job.boxes[start:start + step]
        box_crs = chunk[0].box_crs
        try:
            preds = predictor.predict(info.path, [list(b.box) for b in chunk], query=job.query or args.query,
                                      box_crs=box_crs, ids=[b.box_id for b in chunk])
            records = []
            with predictor.open(info.path) as raster:
                for pred, item in zip(preds, chunk):
                    box_row, phrase_rows = prediction_rows(pred, item, info, raster, ctx)
                    records.append({"key": parts.box_key(info.key, item.box_id), "box": box_row,
                                    "phrases": phrase_rows})
                    if files:
                        outputs.write_outputs(pred, raster, out / "boxes", files, geo_opts)
        except (ValueError, OSError, DataError, RuntimeError) as exc:
            print(f"FAILED {info.path}: {exc}", file=sys.stderr)
            bar.update(len(job.boxes) - start)
            return False
        writer.append(records)
        bar.update(len(chunk))
    return True
