"""``clvnet demo``: serve the web demo for a checkpoint (loopback only unless told otherwise)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def register(subparsers: Any) -> None:
    """Add the ``demo`` subcommand."""
    p = subparsers.add_parser("demo", help="serve the interactive web demo (Gradio)",
                              description="Upload or pick an aerial image, draw boxes, read grounded captions.")
    p.add_argument("--checkpoint", required=True, type=Path, help="checkpoint folder (from `clvnet train`)")
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to bind (default 127.0.0.1; use 0.0.0.0 only behind a firewall)")
    p.add_argument("--port", type=int, default=7860, help="TCP port (default 7860)")
    p.add_argument("--share", type=_bool, default=False, metavar="{true,false}",
                   help="create a public gradio.live link (default false)")
    p.add_argument("--max-upload-mb", type=float, default=50.0, help="largest accepted upload in MB (default 50)")
    p.add_argument("--max-boxes", type=int, default=4, help="most boxes per request (default 4)")
    p.add_argument("--max-megapixels", type=float, default=100.0,
                   help="largest image accepted, in megapixels (default 100, i.e. 10,000 x 10,000)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="let Python code shipped in the checkpoint's model folders run (off by default)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load the predictor, build the app and serve it until interrupted."""
    if not args.checkpoint.is_dir():
        raise FileNotFoundError(f"--checkpoint {args.checkpoint}: not a folder")
    if not 0 < args.port < 65536:
        raise ValueError(f"--port must be in 1..65535, got {args.port}")
    if args.max_boxes < 1:
        raise ValueError(f"--max-boxes must be >= 1, got {args.max_boxes}")
    if args.max_upload_mb <= 0:
        raise ValueError(f"--max-upload-mb must be > 0, got {args.max_upload_mb}")
    if args.max_megapixels <= 0:
        raise ValueError(f"--max-megapixels must be > 0, got {args.max_megapixels}")
    from clvnet.demo import build_app, launch_app
    from clvnet.inference.predictor import Predictor
    from clvnet.models.card import card_line, load_card

    card = load_card(args.checkpoint)  # a malformed card is an error naming the file
    print(card_line(args.checkpoint))
    predictor = Predictor.from_pretrained(args.checkpoint, device=args.device,
                                          trust_remote_code=args.trust_remote_code)
    demo = build_app(predictor, max_boxes=args.max_boxes, max_pixels=int(args.max_megapixels * 1e6), card=card)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("binding to %s: the demo is reachable from other machines", args.host)
    launch_app(demo, host=args.host, port=args.port, share=args.share, max_upload_mb=args.max_upload_mb)
    return 0
