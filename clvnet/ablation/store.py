"""Atomic JSON files: a suite's per-run results survive an interruption at any point."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_json(path: Path, obj: Any) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically (a temporary file in the same folder, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=1, default=str)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_json(path: Path) -> Any:
    """The JSON in ``path``, or ``None`` when there is no such file."""
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def is_ok(path: Path) -> bool:
    """True when ``path`` holds a result whose ``status`` is ``ok``."""
    got = read_json(path)
    return isinstance(got, dict) and got.get("status") == "ok"
