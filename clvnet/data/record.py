"""The GCG record: the interchange format between loaders, trainer, evaluator and predictor.

A record (design §4)::

    {"image": path, "height": H, "width": W, "box": [x0, y0, x1, y1] | null,
     "caption": plain text, "phrases": [{"text", "span": [s, e], "masks": [RLE, ...]}],
     "meta": {...}}

``caption[s:e] == text`` for every phrase. The model's target text is the caption with each
phrase written ``<p> text </p> [SEG]`` (:func:`to_tagged` / :func:`from_tagged`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clvnet.data import rle as rle_utils

P_OPEN, P_CLOSE, SEG = "<p>", "</p>", "[SEG]"
# Limits of one record (design §7): far above any real GCG sample, low enough that showing, training on
# or evaluating a record takes bounded time and memory (eval matching grows with the square of the phrases).
MAX_CAPTION_CHARS = 20_000
MAX_PHRASES = 256
_TAG_RE = re.compile(r"<p>\s*(.*?)\s*</p>\s*\[SEG\]", re.DOTALL)


class DataError(ValueError):
    """Bad input data; the message names the file, the record and the field."""

    def __init__(self, message: str, *, file: str | Path | None = None, record: str | int | None = None,
                 field: str | None = None) -> None:
        where = []
        if file is not None:
            where.append(f"file {file}")
        if record is not None:
            where.append(f"record {record}")
        if field is not None:
            where.append(f"field '{field}'")
        self.file, self.record, self.field, self.reason = file, record, field, message
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class FieldError(ValueError):
    """A record field is missing or has the wrong type (``field`` is its dotted name)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


_MISSING = object()


def _get(d: Any, key: str, conv: Any, default: Any = _MISSING, prefix: str = "") -> Any:
    """``conv(d[key])``, raising :class:`FieldError` naming ``prefix + key`` when it is missing or wrong."""
    if not isinstance(d, dict):
        raise FieldError(prefix.rstrip(".") or "<record>", f"expected a JSON object, got {type(d).__name__}")
    if key not in d or (default is not _MISSING and d[key] is None):
        if default is _MISSING:
            raise FieldError(prefix + key, f"missing key '{prefix + key}'")
        return default
    try:
        return conv(d[key])
    except FieldError:
        raise
    except (TypeError, ValueError, OverflowError, IndexError, KeyError) as exc:
        raise FieldError(prefix + key, f"bad value for '{prefix + key}': {str(d[key])[:60]!r} ({exc})") from None


@dataclass
class Phrase:
    """One grounded phrase: its text, its character span in the caption, and its instance masks."""

    text: str
    span: tuple[int, int]
    masks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def is_multi_target(self) -> bool:
        return len(self.masks) > 1

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "span": [int(self.span[0]), int(self.span[1])], "masks": self.masks}

    @classmethod
    def from_dict(cls, d: dict[str, Any], prefix: str = "") -> Phrase:
        """Inverse of :meth:`to_dict`; a missing or mistyped field raises :class:`FieldError` naming it."""
        def span(v: Any) -> tuple[int, int]:
            if not isinstance(v, (list, tuple)) or len(v) != 2:
                raise ValueError("expected [start, end]")
            return int(v[0]), int(v[1])

        def masks(v: Any) -> list[Any]:
            if not isinstance(v, list):
                raise TypeError("expected a list of RLEs")
            return list(v)

        return cls(text=_get(d, "text", str, prefix=prefix), span=_get(d, "span", span, prefix=prefix),
                   masks=_get(d, "masks", masks, [], prefix=prefix))


@dataclass
class GCGRecord:
    """One grounded-conversation-generation sample (or prediction)."""

    image: str
    height: int
    width: int
    caption: str
    phrases: list[Phrase] = field(default_factory=list)
    box: tuple[float, float, float, float] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    id: str = ""

    def __post_init__(self) -> None:
        if not self.id:
            self.id = Path(self.image).stem

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "image": self.image, "height": self.height, "width": self.width,
            "box": None if self.box is None else [float(v) for v in self.box],
            "caption": self.caption, "phrases": [p.to_dict() for p in self.phrases], "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GCGRecord:
        """Inverse of :meth:`to_dict`; a missing or mistyped field raises :class:`FieldError` naming it."""
        def box(v: Any) -> tuple[float, float, float, float]:
            if not isinstance(v, (list, tuple)) or len(v) != 4:
                raise ValueError("expected [x0, y0, x1, y1]")
            return float(v[0]), float(v[1]), float(v[2]), float(v[3])

        def phrases(v: Any) -> list[Phrase]:
            if not isinstance(v, list):
                raise TypeError("expected a list of phrases")
            return [Phrase.from_dict(p, prefix=f"phrases[{i}].") for i, p in enumerate(v)]

        def size(v: Any) -> int:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v != int(v):
                raise ValueError("expected an integer")
            return int(v)

        return cls(
            id=_get(d, "id", lambda v: str(v or ""), ""), image=_get(d, "image", str),
            height=_get(d, "height", size), width=_get(d, "width", size), caption=_get(d, "caption", str),
            phrases=_get(d, "phrases", phrases, []), box=_get(d, "box", box, None),
            meta=_get(d, "meta", lambda v: dict(v or {}), {}),
        )

    def tagged(self) -> str:
        """The target text with ``<p> ... </p> [SEG]`` tags."""
        return to_tagged(self.caption, self.phrases)

    def image_path(self, root: str | Path | None = None) -> Path:
        p = Path(self.image)
        return p if p.is_absolute() or root is None else Path(root) / p


# --------------------------------------------------------------------------- tagged text
def to_tagged(caption: str, phrases: list[Phrase]) -> str:
    """Insert ``<p> text </p> [SEG]`` around each phrase span (spans must not overlap)."""
    out, pos = [], 0
    for p in sorted(phrases, key=lambda p: p.span[0]):
        s, e = p.span
        if s < pos:
            raise ValueError(f"phrase spans overlap at {p.span} ({p.text!r})")
        out.append(caption[pos:s])
        out.append(f"{P_OPEN} {caption[s:e]} {P_CLOSE} {SEG}")
        pos = e
    out.append(caption[pos:])
    return "".join(out)


def from_tagged(tagged: str) -> tuple[str, list[Phrase]]:
    """Parse tagged text into ``(caption, phrases)``; phrases have no masks yet.

    ``<p> a car </p> [SEG]`` becomes ``a car`` in the caption with its span recorded.
    """
    caption_parts: list[str] = []
    phrases: list[Phrase] = []
    pos, length = 0, 0
    for m in _TAG_RE.finditer(tagged):
        before = tagged[pos:m.start()]
        caption_parts.append(before)
        length += len(before)
        text = m.group(1)
        phrases.append(Phrase(text=text, span=(length, length + len(text))))
        caption_parts.append(text)
        length += len(text)
        pos = m.end()
    caption_parts.append(tagged[pos:])
    return "".join(caption_parts), phrases


def strip_tags(text: str) -> str:
    """Remove every tag (``<p>``, ``</p>``, ``[SEG]``) and tidy whitespace, as GLaMM does for captions."""
    text = text.replace(P_OPEN, "").replace(P_CLOSE, "").replace(SEG, "")
    return re.sub(r"\s+", " ", text).strip()


# --------------------------------------------------------------------------- validation
def validate(record: GCGRecord, *, file: str | Path | None = None, check_masks: bool = True) -> None:
    """Check a record's invariants; raise :class:`DataError` naming file, record and field."""
    rid = record.id
    if len(record.caption) > MAX_CAPTION_CHARS:
        raise DataError(f"caption has {len(record.caption)} characters; a record holds at most {MAX_CAPTION_CHARS}",
                        file=file, record=rid, field="caption")
    if len(record.phrases) > MAX_PHRASES:
        raise DataError(f"{len(record.phrases)} phrases; a record holds at most {MAX_PHRASES}", file=file,
                        record=rid, field="phrases")
    if record.height <= 0 or record.width <= 0:
        raise DataError(f"image size must be positive, got {record.height}x{record.width}",
                        file=file, record=rid, field="height/width")
    if record.box is not None:
        x0, y0, x1, y1 = record.box
        if x1 <= x0 or y1 <= y0:
            raise DataError(f"box {list(record.box)} has zero area or inverted corners", file=file, record=rid,
                            field="box")
        if x0 < 0 or y0 < 0 or x1 > record.width or y1 > record.height:
            raise DataError(f"box {list(record.box)} lies outside the {record.width}x{record.height} image",
                            file=file, record=rid, field="box")
    last_end = -1
    for i, p in enumerate(record.phrases):
        s, e = p.span
        if not (0 <= s < e <= len(record.caption)) or record.caption[s:e] != p.text:
            got = record.caption[s:e] if 0 <= s <= e <= len(record.caption) else "<out of range>"
            raise DataError(f"span {list(p.span)} gives {got!r}, expected {p.text!r}", file=file, record=rid,
                            field=f"phrases[{i}].span")
        if s < last_end:
            raise DataError(f"span {list(p.span)} overlaps the previous phrase", file=file, record=rid,
                            field=f"phrases[{i}].span")
        last_end = e
        if not p.masks:
            raise DataError(f"phrase {p.text!r} has no mask", file=file, record=rid, field=f"phrases[{i}].masks")
        if check_masks:
            for k, m in enumerate(p.masks):
                try:
                    h, w = rle_utils.check_rle(m)
                except ValueError as exc:
                    raise DataError(f"not a valid COCO RLE: {exc}", file=file, record=rid,
                                    field=f"phrases[{i}].masks[{k}]") from exc
                if (h, w) != (record.height, record.width):
                    raise DataError(f"RLE size {h}x{w} differs from the image size {record.height}x{record.width}",
                                    file=file, record=rid, field=f"phrases[{i}].masks[{k}]")


# --------------------------------------------------------------------------- JSONL
def decode_line(raw: bytes, path: str | Path, lineno: int) -> str:
    """One line of a text file as UTF-8; bytes that are not UTF-8 raise :class:`DataError` naming file and line."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"line {lineno} is not valid UTF-8 (byte {raw[exc.start:exc.start + 1]!r} at column "
                        f"{exc.start + 1})", file=path, record=f"line {lineno}") from None


def iter_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of every line of a UTF-8 text file (see :func:`decode_line`)."""
    with Path(path).open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            yield lineno, decode_line(raw, path, lineno)


def utf8_error(exc: UnicodeDecodeError, path: str | Path) -> DataError:
    """The :class:`DataError` for a whole file that is not UTF-8 (names the file and the byte offset)."""
    return DataError(f"not valid UTF-8 (byte {exc.object[exc.start:exc.start + 1]!r} at offset {exc.start})",
                     file=path)


def iter_jsonl(path: str | Path, *, validate_records: bool = False) -> Iterator[GCGRecord]:
    """Stream records from a JSONL file; a bad line raises with the file and line number."""
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", file=path)
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"line {lineno} is not valid JSON (truncated?): {exc.msg}", file=path,
                            record=f"line {lineno}") from exc
        try:
            rec = GCGRecord.from_dict(d)
        except FieldError as exc:
            rid = d.get("id") if isinstance(d, dict) and isinstance(d.get("id"), (str, int)) else None
            raise DataError(f"line {lineno} is not a GCG record: {exc}", file=path,
                            record=rid if rid not in (None, "") else f"line {lineno}", field=exc.field) from None
        if validate_records:
            validate(rec, file=path)
        yield rec


def read_jsonl(path: str | Path, *, validate_records: bool = False) -> list[GCGRecord]:
    """Read all records of a JSONL file."""
    return list(iter_jsonl(path, validate_records=validate_records))


def write_jsonl(records: Iterable[GCGRecord], path: str | Path) -> int:
    """Write records as JSONL (atomically: temp file then rename); returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    n = 0
    with tmp.open("w") as f:
        for r in records:
            f.write(json.dumps(r.to_dict(), separators=(",", ":")) + "\n")
            n += 1
    tmp.replace(path)
    return n
