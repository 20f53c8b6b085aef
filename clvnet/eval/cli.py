"""``clvnet eval``: evaluate GCG predictions, and ``clvnet eval export-glamm`` to write GLaMM's formats.

Usage::

    clvnet eval --gt GT.jsonl --pred PRED.jsonl [--text-encoder PATH] [--out metrics.json] [--no-java]
    clvnet eval --gt mask_gt.json --gt-captions caption_gt.json --pred PRED_DIR ...
    clvnet eval export-glamm --gt GT.jsonl --pred PRED.jsonl --out DIR
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``eval`` subcommand (with its ``export-glamm`` sub-subcommand)."""
    p = subparsers.add_parser("eval", help="GCG metrics: CIDEr, METEOR, AP50, mIoU, Recall (offline)",
                              usage="clvnet eval --gt GT --pred PRED [--gt-captions CAPTIONS] [--text-encoder PATH] "
                                    "[--out metrics.json] [--no-java] [--engine {faster,pycocotools}]\n"
                                    "       clvnet eval export-glamm --gt GT.jsonl --pred PRED.jsonl --out DIR",
                              description="Evaluate grounded captions and masks with GLaMM's GCG protocol, "
                                          "offline. Metrics are x100.")
    p.add_argument("--gt", type=Path, help="GT: GCG-record JSONL, or GLaMM's COCO mask GT JSON (with --gt-captions)")
    p.add_argument("--gt-captions", type=Path, help="GLaMM's COCO caption GT JSON (with a mask GT JSON as --gt)")
    p.add_argument("--pred", type=Path, help="predictions: GCG-record JSONL, or a folder of GLaMM {image_id}.json")
    p.add_argument("--text-encoder", type=Path, default=None,
                   help="local BERT-style encoder folder for Recall (default: offline all-MiniLM-L6-v2)")
    p.add_argument("--out", type=Path, default=None, help="write the metrics JSON here")
    p.add_argument("--no-java", action="store_true",
                   help="skip METEOR and use a simple tokenizer instead of PTB (no Java needed)")
    p.add_argument("--engine", choices=["faster", "pycocotools"], default="faster",
                   help="COCOeval implementation for AP50 (identical numbers; default faster-coco-eval)")
    p.set_defaults(func=_run_eval)
    sub = p.add_subparsers(dest="eval_command", metavar="{export-glamm}")
    e = sub.add_parser("export-glamm", help="write GCG records as GLaMM's GT pair and per-image prediction files")
    e.add_argument("--gt", type=Path, required=True, help="GT GCG-record JSONL")
    e.add_argument("--pred", type=Path, required=True, help="prediction GCG-record JSONL")
    e.add_argument("--out", type=Path, required=True, help="output folder")
    e.set_defaults(func=_run_export)


def load_inputs(gt: Path, gt_captions: Path | None, pred: Path) -> tuple[list[Any], list[Any]]:
    """Read GT and predictions in either format into evaluator inputs."""
    from clvnet.data.record import read_jsonl
    from clvnet.eval.glamm_io import read_glamm_gt, read_glamm_predictions
    from clvnet.eval.inputs import gt_from_records, pred_from_records

    if gt_captions is not None:
        gts = read_glamm_gt(gt, gt_captions)
    elif gt.suffix == ".json":
        raise ValueError(f"--gt {gt} looks like GLaMM's COCO mask GT; pass its caption file with --gt-captions")
    else:
        gts = gt_from_records(read_jsonl(gt, validate_records=True), file=gt)
    if pred.is_dir():
        preds = read_glamm_predictions(pred, gts)
    else:
        preds = pred_from_records(read_jsonl(pred), file=pred)
    return gts, preds


def _run_eval(args: argparse.Namespace) -> int:
    import sys

    from clvnet.eval.evaluator import evaluate, format_table

    if args.gt is None or args.pred is None:
        raise ValueError("clvnet eval needs --gt and --pred (or the subcommand export-glamm)")
    gts, preds = load_inputs(args.gt, args.gt_captions, args.pred)
    try:
        metrics = evaluate(gts, preds, text_encoder=args.text_encoder, use_java=not args.no_java,
                           engine=args.engine)
    except RuntimeError as exc:  # Java missing, the METEOR / PTB jar failed
        print(f"clvnet eval: error: {exc}", file=sys.stderr)
        return 2
    print(format_table(metrics))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(metrics, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


def _run_export(args: argparse.Namespace) -> int:
    from clvnet.data.record import read_jsonl
    from clvnet.eval.glamm_io import export_glamm

    paths = export_glamm(read_jsonl(args.gt), read_jsonl(args.pred), args.out)
    print(f"wrote {paths['mask_gt']}, {paths['caption_gt']} and {paths['predictions']}/")
    print(f"evaluate with: clvnet eval --gt {paths['mask_gt']} --gt-captions {paths['caption_gt']} "
          f"--pred {paths['predictions']}")
    return 0
