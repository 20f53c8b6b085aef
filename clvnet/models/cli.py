"""``clvnet info --preset NAME``: parameter table of a model preset (meta device, no weights needed)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``info`` subcommand."""
    p = subparsers.add_parser("info", help="parameter counts of a model preset (no weights needed)")
    p.add_argument("--preset", default="tiny", help="shipped preset name (clvnet configs model) or a YAML path")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. trainable.llm=lora")
    p.set_defaults(func=_handler)


def _handler(args: argparse.Namespace) -> int:
    from clvnet.models import load_model_config
    from clvnet.models.info import info_table

    cfg = load_model_config(args.preset, args.overrides)
    print(info_table(cfg))
    return 0
