"""``clvnet train --config NAME|FILE.yaml [key=value ...] [--resume DIR|auto]``.

The same command runs as one process or under ``accelerate launch`` / ``torchrun``::

    accelerate launch --config_file $(clvnet configs --path accelerate/ddp) -m clvnet train --config ...
    torchrun --nproc_per_node 4 -m clvnet train --config ...
    torchrun --standalone --nproc_per_node 2 -m clvnet train --config ... train.device=cpu   # gloo, no GPU
    # multi-node: torchrun --nnodes N --node_rank R --rdzv_endpoint HOST:PORT --nproc_per_node G -m clvnet train ...
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

log = logging.getLogger("clvnet.train")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` subcommand."""
    p = subparsers.add_parser("train", help="train a model from an experiment config",
                              description="Train CLV-Net. Keys of the config can be overridden as key=value.")
    p.add_argument("--config", required=True,
                   help="experiment YAML, or a shipped experiment name (tiny_synthrs, quickstart, paper, ...)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted config overrides, e.g. train.batch_size=8")
    p.add_argument("--resume", default=None, metavar="DIR|auto",
                   help="continue from a checkpoint folder, or the run's latest one ('auto')")
    p.add_argument("--output-dir", default=None, help="run folder (overrides output_dir)")
    p.set_defaults(func=_handler)


def _handler(args: argparse.Namespace) -> int:
    from clvnet.config import load_config
    from clvnet.engine.config import TrainConfig
    from clvnet.engine.trainer import TrainingAborted, train

    overrides = list(args.overrides)
    if args.output_dir:
        overrides.append(f"output_dir={args.output_dir}")
    cfg = load_config(TrainConfig, args.config, overrides, section="experiments")
    try:
        path = train(cfg, resume=args.resume)
    except TrainingAborted as exc:
        print(f"clvnet train: aborted: {exc}", file=sys.stderr)
        return 3
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"checkpoint: {path}")
    return 0
