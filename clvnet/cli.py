"""The ``clvnet`` command line: one subcommand per area, each registered by its own module.

Each area module exposes ``register(subparsers)`` which adds its parser and sets
``func=handler`` where ``handler(args) -> int``. Heavy imports (torch, transformers) happen
inside handlers, so ``clvnet --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

# (module, purpose); order is the order in --help.
_AREAS: tuple[str, ...] = (
    "clvnet.data.cli",        # clvnet data {synth,stats,convert,show}
    "clvnet.models.cli",      # clvnet info
    "clvnet.engine.cli",      # clvnet train
    "clvnet.eval.cli",        # clvnet eval
    "clvnet.inference.cli",   # clvnet predict
    "clvnet.demo.cli",        # clvnet demo
    "clvnet.quickstart",      # clvnet quickstart
    "clvnet.ablation.cli",    # clvnet ablate
    "clvnet.config_cli",      # clvnet configs
)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every available subcommand."""
    parser = argparse.ArgumentParser(prog="clvnet", description="CLV-Net for remote-sensing grounded captioning.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod_name in _AREAS:
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and mod_name.startswith(exc.name):
                continue  # area not installed in this build
            raise
        mod.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, PermissionError) as exc:
        if args.verbose:
            raise
        print(f"clvnet {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
