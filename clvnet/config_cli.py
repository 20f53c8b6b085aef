"""``clvnet configs``: list the YAML configs shipped inside the package, or print one's path.

The presets live in ``clvnet/configs`` (found with :mod:`importlib.resources`), so they work from a wheel
as well as from a checkout. ``--config`` and ``--preset`` take their names directly; tools that need a
file path (``accelerate launch --config_file``) take ``$(clvnet configs --path accelerate/ddp)``.
"""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``configs`` subcommand."""
    p = subparsers.add_parser("configs", help="list the shipped YAML configs, or print the path of one")
    p.add_argument("section", nargs="?", default=None,
                   help="model, data, experiments or accelerate (default: all)")
    p.add_argument("--path", metavar="NAME", default=None,
                   help="print the file path of a shipped config, e.g. accelerate/ddp")
    p.set_defaults(func=_handler)


def _handler(args: argparse.Namespace) -> int:
    from clvnet.config import ConfigError, packaged_configs, resolve_config

    if args.path is not None:
        print(resolve_config(args.path, args.section))
        return 0
    root = packaged_configs()
    where = root / args.section if args.section else root
    if not where.is_dir():
        sections = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise ConfigError(f"no config section {args.section!r}; sections: {', '.join(sections)}")
    for path in sorted(where.rglob("*.yaml")):
        print(path.relative_to(where).with_suffix(""))
    return 0
