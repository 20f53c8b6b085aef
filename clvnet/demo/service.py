"""The demo's logic without any Gradio: load an upload, check the boxes, call the Predictor, write outputs.

The web app (:mod:`clvnet.demo.app`) is a thin layer over :class:`DemoService`, and so is the documented
``predict_api`` endpoint, so the browser UI and API clients run exactly the same code. All model work is
done by :class:`clvnet.inference.predictor.Predictor`; colours and overlays come from :mod:`clvnet.viz`.

User mistakes raise :class:`DemoInputError` with a message meant for the page (no traceback).

Every request is bounded before the model sees it: at most ``max_boxes`` boxes, ``max_pixels`` image pixels,
and a question that fits the model's context (:meth:`DemoService.check_query`, in the model's own tokens).
Messages never show server paths (:func:`scrub_paths`).
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)
Box = tuple[float, float, float, float]
RGB = tuple[int, int, int]
# Box outlines: bright, far from each other and from the first phrase colours (clvnet.viz), readable on imagery.
BOX_COLORS: tuple[RGB, ...] = ((255, 214, 0), (0, 229, 255), (255, 64, 255), (118, 255, 3), (255, 145, 0),
                               (255, 255, 255), (255, 128, 171), (128, 216, 255))
OUTSIDE_SHARE = 0.5  # a mask that keeps less than this share of its predicted pixels inside the image is flagged
COLOR_Z = 2.0        # an image whose channel mean is this many training stds from the training mean gets a note
PREVIEW_MAX = 1024  # longest side of the picture shown in the box annotator
RESULT_TTL_S = 3600.0  # request folders older than this are deleted
MAX_PIXELS = 100_000_000  # default largest image per request (10,000 x 10,000)
MAX_QUERY_CHARS = 4000  # question cap when the predictor cannot count tokens
CHARS_PER_TOKEN_CAP = 32  # a question longer than this many characters per allowed token is refused untokenised
_ABS_PATH = re.compile(r"(?<![\w:./~-])/(?:[^\s'\"/:;,()<>]+/)+([^\s'\"/:;,()<>]+)")


def scrub_paths(text: str) -> str:
    """``text`` with every absolute path replaced by its last component (server paths stay private)."""
    return _ABS_PATH.sub(r"\1", text)


def box_color(k: int) -> RGB:
    """The colour of the ``k``-th box (0-based, in drawing order); distinct for any ``k``."""
    if k < len(BOX_COLORS):
        return BOX_COLORS[k]
    import colorsys

    r, g, b = colorsys.hsv_to_rgb((0.07 + k * 0.618033988749895) % 1.0, 0.9, 1.0)
    return (round(r * 255), round(g * 255), round(b * 255))


def assign_box_colors(current: Sequence[Any]) -> list[RGB]:
    """Colours for boxes in drawing order: a box keeps its colour when it already has one of the demo's and no
    earlier box took it (so colours stay put across runs and deletions); any other box gets the first free one."""
    taken: set[RGB] = set()
    keep: list[RGB | None] = []
    for c in current:
        try:
            rgb = tuple(int(v) for v in c)
        except (TypeError, ValueError):
            rgb = ()
        ok = len(rgb) == 3 and rgb not in taken and rgb in BOX_COLORS
        keep.append(rgb if ok else None)  # type: ignore[arg-type]
        if ok:
            taken.add(rgb)  # type: ignore[arg-type]
    out: list[RGB] = []
    k = 0
    for c in keep:
        if c is None:
            while box_color(k) in taken:
                k += 1
            c = box_color(k)
            taken.add(c)
        out.append(c)
    return out


def unrotate_box(box: Box, orientation: int, width: float, height: float) -> Box:
    """A box drawn on the annotator's view rotated ``orientation`` quarter turns clockwise, in the unrotated
    ``width`` x ``height`` image (the annotator reports boxes in the rotated view's coordinates)."""
    x0, y0, x1, y1 = box
    o = int(orientation) % 4
    if o == 0:
        return box
    if o == 1:    # view (x', y') = (H - y, x)
        return (y0, height - x1, y1, height - x0)
    if o == 2:    # view (x', y') = (W - x, H - y)
        return (width - x1, height - y1, width - x0, height - y0)
    return (width - y1, x0, width - y0, x1)  # o == 3: view (x', y') = (y, W - x)


def phrase_flags(pred: Any, height: int, width: int) -> list[str | None]:
    """Per phrase: "no mask" when its full-resolution mask is empty, "mostly outside the image" when it keeps
    less than ``OUTSIDE_SHARE`` of the pixels the model predicted (the rest fell on no-data or outside), else None.
    """
    from clvnet.data import rle as rle_utils

    logits = getattr(pred, "mask_logits", None)
    shares: list[float | None] = []
    if logits is not None:
        arr = np.asarray(logits.float().cpu() if hasattr(logits, "cpu") else logits)
        shares = [float((a > 0).mean()) for a in arr]
    out: list[str | None] = []
    for i, p in enumerate(pred.phrases):
        area = sum(rle_utils.area(m) for m in p.masks) if p.masks else 0
        model = shares[i] if i < len(shares) else None
        if area == 0:
            out.append("no mask: the model found no pixels for this phrase")
        elif model and area / float(height * width) < OUTSIDE_SHARE * model:
            out.append("mostly outside the image: most of this mask fell outside the image's valid pixels")
        else:
            out.append(None)
    return out


def color_note(rgb: np.ndarray, stats: Any) -> str:
    """A warning when the image's per-channel mean is far (``COLOR_Z`` stds) from the training images' ("" if not
    or without statistics). A cheap out-of-distribution hint, not a verdict."""
    if stats is None:
        return ""
    px = rgb.reshape(-1, 3).astype(np.float64)
    mean = px.mean(0)
    z = [abs(m - tm) / max(ts, 1.0) for m, tm, ts in zip(mean, stats.mean, stats.std)]
    if max(z) < COLOR_Z:
        return ""
    return (f"its colours are unlike the training images' (channel means {', '.join(f'{m:.0f}' for m in mean)} "
            f"vs {', '.join(f'{m:.0f}' for m in stats.mean)}): expect the model to be wrong here")


class DemoInputError(ValueError):
    """A problem with what the user gave (no box, unreadable file, empty box); shown on the page."""


@dataclass
class LoadedImage:
    """An uploaded image, ready for drawing boxes and for the predictor.

    Attributes:
        path: the uploaded file (PNG, JPEG, TIFF or GeoTIFF); the predictor reads it at full resolution.
        name: its file name, for titles and download names.
        height: full-resolution height in pixels.
        width: full-resolution width in pixels.
        preview_path: an RGB PNG, longest side at most ``PREVIEW_MAX``, shown in the box annotator.
        scale: full-resolution pixels per preview pixel (>= 1).
        georeferenced: whether the file carries a CRS and geotransform (then GeoJSON is offered).
        preview_width: width of the preview in pixels.
        preview_height: height of the preview in pixels.
        color_note: a warning when the image's colours are unlike the training images' ("" otherwise).
    """

    path: str
    name: str
    height: int
    width: int
    preview_path: str
    scale: float
    georeferenced: bool
    preview_width: int = 0
    preview_height: int = 0
    color_note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (kept in the page's session state)."""
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LoadedImage:
        """Inverse of :meth:`to_dict`."""
        return cls(**d)


@dataclass
class BoxResult:
    """Everything the page shows for one box.

    Attributes:
        index: position of the box in the request (0-based).
        box: the box in full-resolution pixels.
        record: the prediction as a GCG record dict (``Predictor``'s ``to_record().to_dict()``).
        caption_html: the caption with each phrase in its mask's colour (:func:`clvnet.viz.caption_html`).
        colors: one ``(r, g, b)`` per phrase, the same colours as in the overlay.
        overlay_path: the overlay PNG.
        files: downloads: the JSON record, the overlay PNG and, for GeoTIFF input, GeoJSON.
        timings: seconds spent per stage, as reported by the predictor.
        box_color: the box's colour (its heading swatch and its outline in the overlay).
        flags: per phrase, why its mask is not to be trusted ("no mask", "mostly outside the image") or None.
        legend_html: the phrases as a list with their colours, flagged ones struck through.
    """

    index: int
    box: Box
    record: dict[str, Any]
    caption_html: str
    colors: list[tuple[int, int, int]]
    overlay_path: str
    files: list[str]
    timings: dict[str, float] = field(default_factory=dict)
    box_color: RGB = (255, 255, 255)
    flags: list[str | None] = field(default_factory=list)
    legend_html: str = ""


@dataclass
class StreamEvent:
    """One step of a streamed run: partial text of box ``index``, or its finished result."""

    index: int
    text: str = ""
    result: BoxResult | None = None


def parse_boxes(boxes: Any, max_boxes: int | None = None) -> list[Box]:
    """Boxes from the annotator (dicts with xmin/ymin/xmax/ymax), ``[x0, y0, x1, y1]`` lists, or JSON of either.

    Args:
        boxes: a list, or a JSON string holding a list (``""``/None = no box).
        max_boxes: most boxes accepted (checked before any box is converted); None = no cap here.

    Returns:
        The boxes as float tuples, in the order given.

    Raises:
        DemoInputError: malformed JSON or a box that is neither form (the message names the box).
    """
    if boxes is None or (isinstance(boxes, str) and not boxes.strip()):
        return []
    if isinstance(boxes, str):
        try:
            boxes = json.loads(boxes)
        except json.JSONDecodeError as exc:
            raise DemoInputError(f"boxes: not valid JSON ({exc.msg} at character {exc.pos})") from None
        if isinstance(boxes, dict) or (isinstance(boxes, list) and boxes and isinstance(boxes[0], (int, float))):
            boxes = [boxes]
    if not isinstance(boxes, list):
        raise DemoInputError(f"boxes: expected a list of boxes, got {type(boxes).__name__}")
    if max_boxes is not None and len(boxes) > max_boxes:
        raise DemoInputError(_too_many(len(boxes), max_boxes))
    out: list[Box] = []
    for i, b in enumerate(boxes):
        try:
            if isinstance(b, dict):
                vals = [b["xmin"], b["ymin"], b["xmax"], b["ymax"]]
            elif isinstance(b, (list, tuple)) and len(b) == 4:
                vals = list(b)
            else:
                raise TypeError
            x0, y0, x1, y1 = (float(v) for v in vals)
        except (KeyError, TypeError, ValueError):
            raise DemoInputError(
                f"box {i + 1}: expected [x0, y0, x1, y1] or {{'xmin', 'ymin', 'xmax', 'ymax'}}, got {b!r}") from None
        if not all(np.isfinite([x0, y0, x1, y1])):
            raise DemoInputError(f"box {i + 1}: coordinates must be finite numbers, got {b!r}")
        out.append((x0, y0, x1, y1))
    return out


def _too_many(n: int, max_boxes: int) -> str:
    return (f"{n} boxes drawn, but this demo runs at most {max_boxes} per request; "
            "remove some (select a box and press Delete).")


def parse_request(boxes_json: Any, max_boxes: int | None = None) -> tuple[list[Box], str | None]:
    """The API's ``boxes_json``: a list of boxes (pixels), or ``{"boxes": [...], "crs": "EPSG:4326"}``.

    Returns:
        (boxes, crs) with crs None for pixel boxes.

    Raises:
        DemoInputError: malformed JSON, boxes or crs.
    """
    if isinstance(boxes_json, str) and boxes_json.strip().startswith("{"):
        try:
            obj = json.loads(boxes_json)
        except json.JSONDecodeError as exc:
            raise DemoInputError(f"boxes: not valid JSON ({exc.msg} at character {exc.pos})") from None
        if "boxes" in obj:
            unknown = sorted(set(obj) - {"boxes", "crs"})
            if unknown:
                raise DemoInputError(f"boxes: unknown key(s) {unknown}; expected 'boxes' and optional 'crs'")
            crs = obj.get("crs")
            if crs is not None and (not isinstance(crs, str) or not crs.strip()):
                raise DemoInputError(f"boxes: 'crs' must be a CRS string such as 'EPSG:4326', got {crs!r}")
            return parse_boxes(obj["boxes"], max_boxes), (crs.strip() if crs else None)
    return parse_boxes(boxes_json, max_boxes), None


def check_boxes(boxes: Sequence[Box], width: float, height: float, max_boxes: int,
                allow_negative: bool = False) -> list[Box]:
    """Validate boxes against the image; never clips or drops one silently.

    Args:
        boxes: ``(x0, y0, x1, y1)`` boxes.
        width: image width (``math.inf`` to skip the bounds check, e.g. for map coordinates).
        height: image height.
        max_boxes: most boxes allowed.
        allow_negative: accept negative coordinates (map coordinates).

    Raises:
        DemoInputError: no box, too many boxes, a box of zero area, or a box outside the image.
    """
    if not boxes:
        raise DemoInputError("No box drawn: drag a rectangle on the image around the region to describe.")
    if len(boxes) > max_boxes:
        raise DemoInputError(_too_many(len(boxes), max_boxes))
    out = []
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        if x1 <= x0 or y1 <= y0:
            raise DemoInputError(f"Box {i + 1} [{x0:g}, {y0:g}, {x1:g}, {y1:g}] has zero area: "
                                 "it needs x0 < x1 and y0 < y1.")
        if (not allow_negative and (x0 < 0 or y0 < 0)) or x1 > width or y1 > height:
            raise DemoInputError(f"Box {i + 1} [{x0:g}, {y0:g}, {x1:g}, {y1:g}] lies outside the "
                                 f"{width:g}x{height:g} image.")
        out.append((x0, y0, x1, y1))
    return out


class DemoService:
    """Runs the demo's requests on one :class:`~clvnet.inference.predictor.Predictor`.

    Args:
        predictor: a loaded ``Predictor`` (``predict(image, boxes, query=None, stream=False)``).
        workdir: folder for previews and downloads; a fresh temporary folder when None.
        max_boxes: most boxes per request.
        max_pixels: most pixels (height x width) of an image.
        card: the checkpoint's :class:`clvnet.models.card.ModelCard` (None: it has none).
    """

    def __init__(self, predictor: Any, workdir: str | Path | None = None, max_boxes: int = 4,
                 max_pixels: int = MAX_PIXELS, card: Any = None) -> None:
        if max_boxes < 1:
            raise ValueError(f"max_boxes must be >= 1, got {max_boxes}")
        if max_pixels < 1:
            raise ValueError(f"max_pixels must be >= 1, got {max_pixels}")
        self.predictor = predictor
        self.card = card
        self.max_boxes = max_boxes
        self.max_pixels = max_pixels
        if workdir is None:
            workdir = tempfile.mkdtemp(prefix="clvnet-demo-")
            atexit.register(shutil.rmtree, workdir, True)
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)

    @property
    def accepts_questions(self) -> bool:
        """Whether the model was trained with user questions (its card says so); otherwise a question is a
        prompt it never saw, and it answers with a degenerate caption ("a top-down view of a top-down view
        of ..."), so none is sent."""
        return bool(self.card is not None and self.card.trained_with_questions)

    # -- uploads --------------------------------------------------------------------------------------
    def _request_dir(self) -> Path:
        """A new folder for one request's files; folders older than ``RESULT_TTL_S`` are removed."""
        now = time.time()
        for old in self.workdir.iterdir():
            if old.is_dir() and now - old.stat().st_mtime > RESULT_TTL_S:
                shutil.rmtree(old, ignore_errors=True)
        d = self.workdir / uuid.uuid4().hex[:12]
        d.mkdir()
        return d

    def load(self, path: str | Path) -> LoadedImage:
        """Open an uploaded file and write the preview the user draws boxes on.

        Raises:
            DemoInputError: the file cannot be read as an image (the message names it).
        """
        from clvnet.data.record import DataError

        path = Path(path)
        try:
            with self._open(path) as raster:
                height, width, geo = raster.height, raster.width, raster.is_georeferenced
                if height * width > self.max_pixels:  # checked on the header, before any pixel is read
                    raise DemoInputError(
                        f"{path.name} is {width}x{height} = {height * width / 1e6:,.0f} megapixels; this demo "
                        f"takes images of at most {self.max_pixels / 1e6:,.0f} megapixels.")
                rgb = raster.preview().rgb
        except DemoInputError:
            raise
        except (DataError, ValueError, OSError):
            # the reason would name the server's copy of the file and the imaging library: keep it in the log
            log.info("cannot read upload %s", path, exc_info=True)
            raise DemoInputError(f"{path.name} is not a readable image (PNG, JPEG or GeoTIFF).") from None
        preview = Image.fromarray(rgb)
        if max(preview.size) > PREVIEW_MAX:
            f = PREVIEW_MAX / max(preview.size)
            preview = preview.resize((max(1, round(preview.width * f)), max(1, round(preview.height * f))),
                                     Image.Resampling.LANCZOS)
        preview_path = self._request_dir() / f"{path.stem}_preview.png"
        preview.save(preview_path)
        stats = getattr(self.card, "image_stats", None)
        return LoadedImage(path=str(path), name=path.name, height=height, width=width,
                           preview_path=str(preview_path), scale=width / preview.width, georeferenced=geo,
                           preview_width=preview.width, preview_height=preview.height,
                           color_note=color_note(rgb, stats))

    def _open(self, path: str | Path) -> Any:
        """Open a raster with the predictor's own band/stretch options (plain defaults without a predictor)."""
        opener = getattr(self.predictor, "open", None)
        if opener is not None:
            return opener(path)
        from clvnet.inference.raster import open_raster

        return open_raster(path)

    def boxes_from_preview(self, image: LoadedImage, preview_boxes: Sequence[Box]) -> list[Box]:
        """Preview-pixel boxes (as drawn) -> validated full-resolution boxes."""
        s = image.scale
        full = [(x0 * s, y0 * s, x1 * s, y1 * s) for x0, y0, x1, y1 in preview_boxes]
        if s != 1.0:  # rounding of the preview may leave the last pixel a hair outside
            full = [(max(0.0, x0), max(0.0, y0), min(float(image.width), x1), min(float(image.height), y1))
                    for x0, y0, x1, y1 in full]
        return check_boxes(full, image.width, image.height, self.max_boxes)

    # -- running --------------------------------------------------------------------------------------
    def check_query(self, query: str | None) -> str | None:
        """The cleaned question, if it fits the model's context (counted in the model's own tokens).

        Raises:
            DemoInputError: the question is too long; the message gives the limit.
        """
        query = _clean_query(query)
        if query is None:
            return None
        if not self.accepts_questions:
            why = ("its model card says it was trained without questions" if self.card is not None
                   else "it has no model card, and checkpoints trained by clvnet see no questions")
            raise DemoInputError(f"This model cannot answer questions: {why} (every training prompt was the same "
                                 "captioning instruction). Leave the question empty.")
        limit = getattr(self.predictor, "max_query_tokens", lambda: None)()
        if limit is None:  # a predictor that cannot count tokens: a plain character cap
            if len(query) > MAX_QUERY_CHARS:
                raise DemoInputError(f"Question too long: {len(query):,} characters; at most {MAX_QUERY_CHARS:,}.")
            return query
        too_long = f"Question too long: {{}}; this model reads at most {limit:,} tokens of question. Shorten it."
        if len(query) > CHARS_PER_TOKEN_CAP * max(limit, 1):  # surely too long: not worth tokenising
            raise DemoInputError(too_long.format(f"{len(query):,} characters"))
        n = int(self.predictor.query_tokens(query))
        if n > limit:
            raise DemoInputError(too_long.format(f"{n:,} tokens"))
        return query

    def _ids(self, image: LoadedImage, n: int) -> list[str]:
        """Prediction ids (and download file stems): ``<image stem>_box<k>``, k from 1 as on the page.

        An upload whose stem is not a plain file name (:func:`clvnet.data.ids.id_problem`) is called ``image``.
        """
        from clvnet.data.ids import MAX_ID_BYTES, id_problem

        stem = Path(image.name).stem
        if id_problem(stem) is not None or len(stem.encode("utf-8", errors="surrogatepass")) > MAX_ID_BYTES - 16:
            stem = "image"
        return [f"{stem}_box{k + 1}" for k in range(n)]

    def run(self, image: LoadedImage, boxes: Sequence[Box], query: str | None = None,
            box_crs: str | None = None, colors: Sequence[RGB] | None = None) -> list[BoxResult]:
        """Predict all boxes in one call and write their outputs (what ``predict_api`` returns).

        Args:
            image: the loaded image.
            boxes: pixel boxes ``(x0, y0, x1, y1)``, or map boxes ``(xmin, ymin, xmax, ymax)`` in ``box_crs``.
            query: optional question.
            box_crs: CRS of map-coordinate boxes (e.g. ``EPSG:4326``; georeferenced images only), None = pixels.
            colors: one outline colour per box (default :func:`box_color` by position).

        Raises:
            DemoInputError: bad boxes (including map boxes off the image), a question too long for the model,
                or map boxes on a non-georeferenced image.
        """
        query = self.check_query(query)
        if box_crs is None:
            boxes = check_boxes(boxes, image.width, image.height, self.max_boxes)
        else:
            if not image.georeferenced:
                raise DemoInputError(f"Boxes in map coordinates ({box_crs}) need a georeferenced image; "
                                     f"{image.name} has no CRS. Give the boxes in pixels.")
            boxes = check_boxes(boxes, math.inf, math.inf, self.max_boxes, allow_negative=True)
        try:
            preds = self.predictor.predict(image.path, [list(b) for b in boxes], query=query,
                                           ids=self._ids(image, len(boxes)), box_crs=box_crs)
        except ValueError as exc:  # the Predictor's input errors (box off the image, unknown CRS ...)
            text = str(exc).replace("--box-crs", "crs").replace("--box", "box").replace("--query", "the question")
            raise DemoInputError(scrub_paths(text)) from None
        if len(preds) != len(boxes):
            raise RuntimeError(f"predictor returned {len(preds)} predictions for {len(boxes)} boxes")
        out_dir = self._request_dir()
        cols = list(colors) if colors is not None else [box_color(k) for k in range(len(boxes))]
        return [self._finish(image, i, _box(p.box), p, out_dir, cols[i]) for i, p in enumerate(preds)]

    def stream(self, image: LoadedImage, boxes: Sequence[Box], query: str | None = None,
               colors: Sequence[RGB] | None = None) -> Iterator[StreamEvent]:
        """Like :meth:`run`, but yields each box's caption text as it is generated, then the box's result.

        The predictor's stream gives text pieces, then that box's prediction, box after box.
        """
        query = self.check_query(query)
        boxes = check_boxes(boxes, image.width, image.height, self.max_boxes)
        out_dir = self._request_dir()
        cols = list(colors) if colors is not None else [box_color(k) for k in range(len(boxes))]
        i, text = 0, ""
        for item in self.predictor.predict(image.path, [list(b) for b in boxes], query=query,
                                           stream=True, ids=self._ids(image, len(boxes))):
            if i >= len(boxes):
                raise RuntimeError(f"predictor streamed more than {len(boxes)} predictions")
            if isinstance(item, str):
                text += item
                yield StreamEvent(index=i, text=text)
            else:
                yield StreamEvent(index=i, text=text,
                                  result=self._finish(image, i, boxes[i], item, out_dir, cols[i]))
                i, text = i + 1, ""
        if i != len(boxes):
            raise RuntimeError(f"predictor streamed {i} predictions for {len(boxes)} boxes")

    def _finish(self, image: LoadedImage, index: int, box: Box, pred: Any, out_dir: Path,
                color: RGB) -> BoxResult:
        """Overlay (box outlined in ``color``), coloured caption, legend and download files for one prediction."""
        from clvnet.demo.render import legend_html
        from clvnet.viz import phrase_colors

        record = pred.to_record()
        colors = phrase_colors(len(record.phrases))
        flags = phrase_flags(pred, image.height, image.width)
        stem = self._ids(image, index + 1)[index]
        overlay_path = out_dir / f"{stem}_overlay.png"
        with self._open(image.path) as raster:
            files = _write_outputs(pred, raster, overlay_path, out_dir / f"{stem}.json", out_dir / f"{stem}.geojson")
            ph, pw = raster.preview().rgb.shape[:2]
        outline_box(overlay_path, box, pw / image.width, ph / image.height, ph, pw, color)
        timings = {k: float(v) for k, v in (getattr(pred, "timings", None) or {}).items()}
        return BoxResult(index=index, box=box, record=record.to_dict(),
                         caption_html=split_caption_html(record.caption, record.phrases, colors,
                                                         int(getattr(pred, "global_end", 0)), flags),
                         colors=colors, overlay_path=str(overlay_path), files=files, timings=timings,
                         box_color=color, flags=flags, legend_html=legend_html(record.phrases, colors, flags))


def outline_box(path: Path, box: Box, sx: float, sy: float, height: int, width: int, color: RGB) -> None:
    """Redraw the box outline of an overlay PNG (:func:`clvnet.viz.render_overlay` draws it white) in ``color``,
    with the same geometry; ``sx``/``sy`` map full-resolution pixels to the overlay's ``width`` x ``height``."""
    from PIL import ImageDraw

    x0, y0, x1, y1 = box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy
    x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
    bw = max(2, max(1, round(min(height, width) / 300)) + 1)
    with Image.open(path) as im:
        img = im.convert("RGB")
    ImageDraw.Draw(img).rectangle([x0, y0, x1 - 1, y1 - 1], outline=color, width=bw)
    img.save(path)


def split_caption_html(caption: str, phrases: Sequence[Any], colors: Sequence[RGB], global_end: int,
                       flags: Sequence[str | None] | None = None) -> str:
    """The caption as HTML, the global scene summary and the box-centred details as two paragraphs.

    Phrase ``i`` keeps its colour ``colors[i]``, its ``data-phrase="i"`` index and its flag in both parts
    (:func:`clvnet.demo.render.caption_html`).

    Args:
        caption: plain caption.
        phrases: phrases with spans into ``caption``.
        colors: one colour per phrase (as in the overlay).
        global_end: offset where the global part ends (0 or ``len(caption)``: one paragraph).
        flags: per phrase, why its mask is suspect (struck through), or None.
    """
    from clvnet.data.record import Phrase
    from clvnet.demo.render import caption_html

    fl = list(flags) if flags is not None else [None] * len(phrases)
    if not 0 < global_end < len(caption):
        return f'<p class="clv-local">{caption_html(caption, list(phrases), colors, fl)}</p>'
    head, tail = caption[:global_end], caption[global_end:]
    # Phrases outside a part fail the span check and are left out of it; indices are kept.
    shifted = [Phrase(text=p.text, span=(p.span[0] - global_end, p.span[1] - global_end)) for p in phrases]
    return (f'<p class="clv-global"><b>Scene:</b> {caption_html(head, list(phrases), colors, fl)}</p>'
            f'<p class="clv-local"><b>In the box:</b> '
            f'{caption_html(tail.lstrip(), _lshift(shifted, tail), colors, fl)}</p>')


def _lshift(phrases: list[Any], text: str) -> list[Any]:
    """Shift spans left by the whitespace that ``text.lstrip()`` removes."""
    from clvnet.data.record import Phrase

    k = len(text) - len(text.lstrip())
    return [Phrase(text=p.text, span=(p.span[0] - k, p.span[1] - k)) for p in phrases]


def _box(values: Sequence[float]) -> Box:
    x0, y0, x1, y1 = (float(v) for v in values)
    return (x0, y0, x1, y1)


def _clean_query(query: str | None) -> str | None:
    return query.strip() if query and query.strip() else None


def _write_outputs(pred: Any, raster: Any, overlay_path: Path, json_path: Path, geojson_path: Path) -> list[str]:
    """JSON record, overlay PNG and (georeferenced input) GeoJSON, by :mod:`clvnet.inference.outputs`."""
    from clvnet.inference import outputs

    files = [str(outputs.write_json(pred, json_path)), str(outputs.write_png(pred, raster, overlay_path))]
    if raster.is_georeferenced:
        files.append(str(outputs.write_geojson(pred, raster, geojson_path)))
    return files
