"""``clvnet data``: make, convert, inspect and summarise GCG datasets.

Subcommands::

    clvnet data synth   --out DIR --num N --seed S [--size 256] [--split NAME] [--hard] [--twins]
                        [--workers K] [--png-level L]
    clvnet data convert geopixeld --src PATH --out OUT.jsonl [--root DIR] [--no-derive-boxes] [--seed S]
    clvnet data convert grandf    --src PATH --out OUT.jsonl [--gt-captions CAPS.json] [--images DIR]
    clvnet data show    DATA.jsonl --index I --out FILE.png
    clvnet data stats   DIR_OR_JSONL
    clvnet data check   DATA.jsonl

Converted JSONLs store image paths relative to the JSONL's folder (absolute when ``--absolute-paths``).
Heavy imports happen inside the handlers.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    """Add ``clvnet data ...`` to the top-level parser."""
    p = subparsers.add_parser("data", help="make, convert, show and summarise GCG datasets")
    sub = p.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)

    s = sub.add_parser("synth", help="generate a SynthRS split (images + records.jsonl)")
    s.add_argument("--out", type=Path, required=True, help="output folder")
    s.add_argument("--num", type=int, required=True, help="number of scenes")
    s.add_argument("--seed", type=int, required=True)
    s.add_argument("--size", type=int, default=256, help="image side in pixels")
    s.add_argument("--split", default="train", help="split name stored in each record")
    s.add_argument("--hard", action="store_true", help="degrade the pixels (haze, clouds, noise, ...)")
    s.add_argument("--twins", action="store_true",
                   help="SynthRS-hard twin scenes: a car and a boat (or a storage tank and a roundabout) side by "
                        "side, told apart only by context; write it as --split test-hard")
    s.add_argument("--workers", type=int, default=1, help="processes (same files for any number)")
    s.add_argument("--png-level", type=int, default=None,
                   help="PNG zlib level 0-9 (default 0: stored, fastest; 1 makes files about 2.3x smaller)")
    s.set_defaults(func=_synth)

    c = sub.add_parser("convert", help="convert a public dataset to GCG JSONL")
    c.add_argument("format", choices=["geopixeld", "grandf"])
    c.add_argument("--src", type=Path, required=True,
                   help="geopixeld: per-image JSON, folder of them, or training-list JSON; "
                        "grandf: GCG annotation JSON/JSONL, or the COCO mask GT file with --gt-captions")
    c.add_argument("--out", type=Path, required=True, help="output JSONL")
    c.add_argument("--root", type=Path, default=None,
                   help="geopixeld: dataset root for relative image/polygon paths")
    c.add_argument("--images", type=Path, default=None, help="grandf: image folder")
    c.add_argument("--gt-captions", type=Path, default=None,
                   help="grandf: COCO captions GT file (with per-image 'labels'); --src is then the COCO mask GT")
    c.add_argument("--no-check-images", dest="check_images", action="store_false",
                   help="grandf: do not require the images to exist")
    c.add_argument("--derive-boxes", action=argparse.BooleanOptionalAction, default=True,
                   help="derive a user box per record (design §4); --no-derive-boxes keeps box null")
    c.add_argument("--seed", type=int, default=0, help="seed of the box derivation")
    c.add_argument("--box-config", type=Path, default=None, help="YAML for BoxDerivationConfig")
    c.add_argument("--box-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="override a BoxDerivationConfig field, e.g. --box-opt max_objects=2 (repeatable)")
    c.add_argument("--absolute-paths", action="store_true", help="store absolute image paths")
    c.set_defaults(func=_convert)

    sh = sub.add_parser("show", help="render one record: image, box, masks and colour-coded phrases")
    sh.add_argument("jsonl", type=Path)
    sh.add_argument("--index", type=int, default=0, help="record index (0-based)")
    sh.add_argument("--id", default=None, help="record id (instead of --index)")
    sh.add_argument("--out", type=Path, required=True, help="output PNG")
    sh.add_argument("--root", type=Path, default=None, help="image root (default: the JSONL's folder)")
    sh.set_defaults(func=_show)

    st = sub.add_parser("stats", help="dataset statistics of a JSONL (or a folder with records.jsonl); records are validated")
    st.add_argument("path", type=Path)
    st.set_defaults(func=_stats)

    ck = sub.add_parser("check", help="validate every record of a JSONL and that its images exist")
    ck.add_argument("jsonl", type=Path)
    ck.add_argument("--root", type=Path, default=None)
    ck.set_defaults(func=_check)


# --------------------------------------------------------------------------- handlers
def _synth(args: argparse.Namespace) -> int:
    try:
        from clvnet.data.synth import generate_split
    except ImportError as exc:
        print(f"clvnet data synth: error: SynthRS is not available in this build "
              f"(clvnet.data.synth.generate_split: {exc})", file=sys.stderr)
        return 2
    if args.num < 1:
        raise ValueError(f"--num must be >= 1, got {args.num}")
    opts = {} if args.png_level is None else {"png_level": args.png_level}
    path = generate_split(args.out, num=args.num, seed=args.seed, size=args.size, split=args.split, hard=args.hard,
                          twins=args.twins, workers=args.workers, **opts)
    print(f"wrote {args.num} scenes to {path}")
    return 0


def _stats_input(path: Path) -> Path:
    if path.is_dir():
        cand = path / "records.jsonl"
        if cand.is_file():
            return cand
        found = sorted(path.glob("*.jsonl"))
        if len(found) != 1:
            raise ValueError(f"{path}: expected records.jsonl or exactly one *.jsonl, found {len(found)}")
        return found[0]
    return path


def _stats(args: argparse.Namespace) -> int:
    from clvnet.data.record import read_jsonl

    try:
        from clvnet.data.stats import dataset_stats, format_stats
    except ImportError as exc:
        print(f"clvnet data stats: error: dataset statistics are not available in this build "
              f"(clvnet.data.stats: {exc})", file=sys.stderr)
        return 2
    records = read_jsonl(_stats_input(args.path), validate_records=True)
    print(format_stats(dataset_stats(records)))
    return 0


def _relative_images(records: list[Any], out: Path, absolute: bool) -> None:
    base = out.resolve().parent
    for r in records:
        p = Path(r.image).resolve()
        r.image = str(p) if absolute else os.path.relpath(p, base)


def _convert(args: argparse.Namespace) -> int:
    from clvnet.config import load_config
    from clvnet.data.boxes import BoxDerivationConfig, derive_boxes
    from clvnet.data.record import write_jsonl

    if args.format == "geopixeld":
        from clvnet.data.loaders.geopixeld import load_geopixeld

        records = load_geopixeld(args.src, root=args.root)
    elif args.gt_captions is not None:
        from clvnet.data.loaders.grandf import load_glamm_coco_gt

        records = load_glamm_coco_gt(args.src, args.gt_captions, images=args.images, check_images=args.check_images)
    else:
        from clvnet.data.loaders.grandf import load_grandf

        records = load_grandf(args.src, images=args.images, check_images=args.check_images)
    if args.derive_boxes:
        cfg = load_config(BoxDerivationConfig, args.box_config, args.box_opt)
        records = derive_boxes(records, cfg, seed=args.seed)
    elif args.box_config is not None or args.box_opt:
        raise ValueError("--box-config/--box-opt need box derivation (drop --no-derive-boxes)")
    _relative_images(records, args.out, args.absolute_paths)
    n = write_jsonl(records, args.out)
    phrases = sum(len(r.phrases) for r in records)
    multi = sum(p.is_multi_target for r in records for p in r.phrases)
    print(f"wrote {n} records ({phrases} phrases, {multi} multi-target) to {args.out}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from clvnet.data import rle
    from clvnet.data.images import load_image
    from clvnet.data.record import DataError, iter_jsonl, validate
    from clvnet.viz import render_overlay

    rec = None
    for i, r in enumerate(iter_jsonl(args.jsonl)):
        if (args.id is not None and r.id == args.id) or (args.id is None and i == args.index):
            rec = r
            break
    if rec is None:
        what = f"id {args.id!r}" if args.id is not None else f"index {args.index}"
        raise ValueError(f"{args.jsonl}: no record with {what}")
    validate(rec, file=args.jsonl)
    img = load_image(rec.image_path(args.root or args.jsonl.parent))
    if img.shape[:2] != (rec.height, rec.width):
        raise DataError(f"image is {img.shape[0]}x{img.shape[1]}, record says {rec.height}x{rec.width}",
                        file=args.jsonl, record=rec.id)
    phrases = sorted(rec.phrases, key=lambda p: p.span)
    masks = [rle.union(p.masks, rec.height, rec.width) for p in phrases]
    out = render_overlay(img, masks, phrases, box=rec.box, caption=rec.caption, title=rec.id)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    out.save(args.out)
    print(f"wrote {args.out} ({rec.id}: {len(phrases)} phrases)")
    return 0


def _check(args: argparse.Namespace) -> int:
    from clvnet.data.images import image_size
    from clvnet.data.record import DataError, iter_jsonl

    n = 0
    for r in iter_jsonl(args.jsonl, validate_records=True):
        h, w = image_size(r.image_path(args.root or args.jsonl.parent))
        if (h, w) != (r.height, r.width):
            raise DataError(f"image is {h}x{w}, record says {r.height}x{r.width}", file=args.jsonl, record=r.id)
        n += 1
    print(f"{args.jsonl}: {n} records OK")
    return 0
