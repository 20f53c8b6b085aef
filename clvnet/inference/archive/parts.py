"""Per-rank part files, which are also the run's manifest.

Each rank appends to ``OUT/parts/rank<k>.jsonl``: one line per finished box,
``{"key": "<raster path>|<box id>", "box": {...}, "phrases": [{...}, ...]}`` (geometries as WKB hex). After
every batch of boxes the lines are flushed and ``fsync``'d, so a box is done exactly when its line is complete
on disk: the set of keys over all part files is the manifest, and there is no second file to disagree with it.

``kill -9`` can leave a torn last line (the batch in flight). Readers ignore a line that is not complete
JSON ending in a newline; the rank that owns the file truncates it back to its last newline before it
appends again. A re-run skips every key already present, whatever the number of ranks of the earlier run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

PARTS_DIR = "parts"


def part_path(out: Path, rank: int) -> Path:
    return out / PARTS_DIR / f"rank{rank}.jsonl"


def box_key(raster_key: str, box_id: str) -> str:
    """The manifest key of a (raster, box) pair."""
    return f"{raster_key}|{box_id}"


def iter_records(out: Path) -> Iterator[dict[str, Any]]:
    """Every complete record of every part file, in rank order then file order (torn lines skipped)."""
    for path in sorted((out / PARTS_DIR).glob("rank*.jsonl"), key=lambda p: (len(p.name), p.name)):
        with open(path, "rb") as f:
            for raw in f:
                if not raw.endswith(b"\n"):
                    break  # the box in flight when a run was killed
                try:
                    rec = json.loads(raw)
                except json.JSONDecodeError:
                    continue
                if isinstance(rec, dict) and "key" in rec:
                    yield rec


def done_keys(out: Path) -> set[str]:
    """The manifest: keys of every box already in a part file."""
    return {str(r["key"]) for r in iter_records(out)}


def torn_lines(out: Path) -> int:
    """Part files whose last line is incomplete (each lost at most the boxes in flight)."""
    n = 0
    for path in (out / PARTS_DIR).glob("rank*.jsonl"):
        size = path.stat().st_size
        if size:
            with open(path, "rb") as f:
                f.seek(size - 1)
                n += f.read(1) != b"\n"
    return n


class PartWriter:
    """Append-only writer of one rank's part file (truncates a torn tail first)."""

    def __init__(self, out: Path, rank: int) -> None:
        self.path = part_path(out, rank)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _truncate_torn_tail(self.path)
        self._f: TextIO = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())

    def append(self, records: list[dict[str, Any]]) -> None:
        """Write ``records`` (one line each) and make them durable before returning."""
        self._f.write("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records))
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> PartWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _truncate_torn_tail(path: Path) -> None:
    """Cut ``path`` back to its last newline (reads only the tail)."""
    if not path.is_file():
        return
    size = path.stat().st_size
    with open(path, "r+b") as f:
        end = size
        while end > 0:
            start = max(0, end - (1 << 16))
            f.seek(start)
            block = f.read(end - start)
            if end == size and block.endswith(b"\n"):
                return
            nl = block.rfind(b"\n")
            if nl >= 0:
                f.truncate(start + nl + 1)
                return
            end = start
        f.truncate(0)
