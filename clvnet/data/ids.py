"""Record and prediction ids that become file names: one sanitiser for every writer and reader.

An id names the files of one record or prediction (``<id>.json``, ``<id>.png``, ``glamm/<id>.json`` ...)
inside an output folder, so it must be a single, plain file-name component:

- not empty, not ``.`` or ``..``;
- no path separator (``/`` or ``\\``) and no control character (NUL, newline, ...);
- at most :data:`MAX_ID_BYTES` bytes of UTF-8, so that ``<id>`` plus the longest suffix a writer adds
  (``.geojson.tmp``) stays below the 255-byte name limit of common file systems.

Ids are checked, never rewritten: a bad id is a :class:`~clvnet.data.record.DataError` naming where it
came from, raised before anything is written. Two ids that differ only in case are duplicates
(:func:`check_unique_ids`), since they overwrite each other on case-insensitive file systems.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from clvnet.data.record import DataError

MAX_ID_BYTES = 200


def id_problem(ident: object) -> str | None:
    """Why ``ident`` cannot be a file name, or None when it can."""
    if not isinstance(ident, str):
        return f"must be a string, got {type(ident).__name__}"
    if ident in ("", ".", ".."):
        return f"{ident!r} is not a file name"
    if "/" in ident or "\\" in ident:
        return "contains a path separator ('/' or '\\')"
    bad = sorted({c for c in ident if ord(c) < 32 or ord(c) == 127})
    if bad:
        return "contains control character(s) " + ", ".join(f"U+{ord(c):04X}" for c in bad)
    size = len(ident.encode("utf-8", errors="surrogatepass"))
    if size > MAX_ID_BYTES:
        return f"is {size} bytes long; ids are at most {MAX_ID_BYTES} bytes"
    return None


def safe_id(ident: object, *, file: str | Path | None = None, record: str | int | None = None,
            field: str = "id") -> str:
    """Return ``ident`` if it can be used as a file name; raise :class:`DataError` otherwise.

    Args:
        ident: the id.
        file, record, field: where the id came from, for the error message.
    """
    problem = id_problem(ident)
    if problem is not None:
        raise DataError(f"id {str(ident)[:80]!r} cannot name an output file: it {problem}", file=file,
                        record=record, field=field)
    assert isinstance(ident, str)
    return ident


def check_unique_ids(ids: Iterable[tuple[str, str]], *, file: str | Path | None = None, field: str = "id") -> None:
    """Raise :class:`DataError` on the first two ids that would name the same file.

    Args:
        ids: ``(id, where)`` pairs; ``where`` says where each id came from (e.g. ``"line 3"``).
        file: the file the ids came from, for the message.
        field: the field holding the ids.
    """
    seen: dict[str, tuple[str, str]] = {}
    for ident, where in ids:
        key = ident.casefold()
        if key in seen:
            first, first_where = seen[key]
            same = "the id" if first == ident else f"the ids {first!r} and"
            raise DataError(f"{same} {ident!r} names the output files of two predictions ({first_where} and "
                            f"{where}); ids must be unique (ignoring case)", file=file, record=where, field=field)
        seen[key] = (ident, where)
