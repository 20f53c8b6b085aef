"""The Predictor: one object that serves ``clvnet predict``, the demo and Python users.

``Predictor.from_pretrained(dir, device="auto").predict(image, boxes, query=None)`` returns one
:class:`~clvnet.inference.prediction.GCGPrediction` per box. ``image`` is a path (any size: PNG, JPEG,
TIFF, GeoTIFF), a numpy array or a PIL image. Per call:

1. the raster is opened (:mod:`clvnet.inference.raster`); the global view and the grounding view are made
   from the decimated whole image (the preview) by the model's own ``processor.views``, as the training
   dataset makes them;
2. image features come from an LRU cache keyed by the SHA-1 of the views' pixels and their sizes, so a
   second box (or a second call) on the same image skips the encoder; the preview itself is cached by
   file identity (path, size, mtime, options), so a large scene is not decimated twice;
3. each box region is read as a window at native resolution and prepared as in training
   (``processor.views``: grown to ``min_region``, padded square, resized to ``region_size``);
4. all boxes are decoded as one batch (``batch_size`` at a time) with the KV cache;
5. mask logits over the global view become full-resolution RLE masks strip by strip
   (:func:`clvnet.inference.masks.logits_to_rle`), nodata pixels removed.

``stream=True`` returns an iterator that yields text pieces as they are generated, then the box's
:class:`GCGPrediction`, box after box.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clvnet.data.record import Phrase
from clvnet.inference.masks import logits_to_rle
from clvnet.inference.prediction import GCGPrediction, split_caption
from clvnet.inference.raster import Preview, Raster, RasterOptions, open_raster

log = logging.getLogger(__name__)
Box = Sequence[float]
REQUIRED_FILES = ("config.yaml", "model.safetensors", "tokenizer/")

__all__ = ["FeatureCache", "GCGPrediction", "Predictor", "resolve_device"]


class FeatureCache:
    """A small LRU cache with hit / miss counters."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(0, int(capacity))
        self._data: OrderedDict[str, Any] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> Any | None:
        """The cached value (marked most recently used), or None."""
        if key in self._data:
            self._data.move_to_end(key)
            self.hits += 1
            return self._data[key]
        self.misses += 1
        return None

    def put(self, key: str, value: Any) -> None:
        """Insert ``value``; the least recently used entry is evicted beyond ``capacity``."""
        if self.capacity == 0:
            return
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.capacity:
            self._data.popitem(last=False)

    def clear(self) -> None:
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``; anything else is passed through."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def check_checkpoint(directory: str | Path) -> Path:
    """Fail early, naming the folder and the missing files, when a checkpoint folder is incomplete."""
    path = Path(directory)
    if not path.is_dir():
        raise FileNotFoundError(f"--checkpoint {path}: folder not found")
    missing = [f for f in REQUIRED_FILES
               if not ((path / f).is_dir() if f.endswith("/") else (path / f).is_file())]
    if "config.yaml" not in missing:
        import yaml

        try:
            cfg = yaml.safe_load((path / "config.yaml").read_bytes()) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"--checkpoint {path}: config.yaml is not valid YAML: {exc}") from None
        if not isinstance(cfg, dict):
            raise ValueError(f"--checkpoint {path}: config.yaml must be a mapping of model settings, "
                             f"got a {type(cfg).__name__}: {str(cfg)[:60]!r}")
        if (cfg.get("trainable") or {}).get("llm") == "lora" and not (path / "adapter").is_dir():
            missing.append("adapter/ (the config trains the LLM with LoRA)")
    if missing:
        raise FileNotFoundError(f"--checkpoint {path}: missing {', '.join(missing)} "
                                f"(a checkpoint folder holds {', '.join(REQUIRED_FILES)} and the tokenizer)")
    return path


class Predictor:
    """Caption-and-segment boxes on images of any size with a loaded CLV-Net.

    Args:
        model: a loaded :class:`clvnet.models.CLVNet` (eval mode is set here).
        device: torch device the model lives on.
        raster: how images are turned into 8-bit RGB (bands, stretch, preview size).
        cache_size: image-feature LRU capacity (images).
        batch_size: boxes decoded together.
        max_new_tokens: default decoding budget (None = the model's config).
        region_max: longest side of a box window read at native resolution; larger windows are decimated.
    """

    def __init__(self, model: Any, *, device: str = "cpu", raster: RasterOptions | None = None,
                 cache_size: int = 8, batch_size: int = 8, max_new_tokens: int | None = None,
                 region_max: int = 4096, accepts_questions: bool = True) -> None:
        self.model = model.eval()
        # False when the checkpoint's card says its training prompts held no user questions: such a model
        # cannot read one, and a question in place of its one instruction makes it loop on its opening words.
        self.accepts_questions = accepts_questions
        if model.processor is None:
            raise ValueError("the model has no processor (built on the meta device?)")
        self.image_views = model.processor.views       # the same preprocessing as in training
        self.device = device
        self.raster_options = raster or RasterOptions()
        self.features = FeatureCache(cache_size)
        self.previews = FeatureCache(max(1, cache_size // 2))
        self.batch_size = max(1, int(batch_size))
        self.max_new_tokens = max_new_tokens
        self.region_max = int(region_max)
        self._lock = threading.Lock()

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str = "auto", *, trust_remote_code: bool = False,
                        **kwargs: Any) -> Predictor:
        """Load a checkpoint folder (``config.yaml``, ``model.safetensors``, tokenizer) onto ``device``.

        ``trust_remote_code`` lets code shipped in the checkpoint's model folders run (never the default).

        Raises:
            FileNotFoundError: the folder or one of its required files is missing (all are named).
            PermissionError: the checkpoint needs remote code and ``trust_remote_code`` is False.
            ValueError: config.yaml is not a YAML mapping, or a weights file is truncated or corrupt (named).
        """
        from safetensors import SafetensorError

        from clvnet.models import from_pretrained

        path = check_checkpoint(directory)
        dev = resolve_device(device)
        try:
            model = from_pretrained(path, device=dev, trust_remote_code=trust_remote_code)
        except SafetensorError as exc:  # a truncated or overwritten weights file
            from clvnet.engine.checkpointing import check_weights

            why = "; ".join(check_weights(path)) or str(exc)
            raise ValueError(f"--checkpoint {path}: cannot load the model: {why}") from None
        except PermissionError:
            raise                                  # remote code refused: the message already names the flag
        except (OSError, KeyError) as exc:
            raise ValueError(f"--checkpoint {path}: cannot load the model: {exc}") from exc
        from clvnet.models.card import load_card

        card = load_card(path)                     # a malformed card is a ValueError naming the file
        kwargs.setdefault("accepts_questions", card is not None and card.trained_with_questions)
        return cls(model, device=dev, **kwargs)

    # ------------------------------------------------------------------ inputs
    def open(self, image: Any, options: RasterOptions | None = None) -> Raster:
        """Open ``image`` with this predictor's raster options, reusing a cached preview (for writers)."""
        return self._open(image, options)

    def _open(self, image: Any, options: RasterOptions | None) -> Raster:
        raster = open_raster(image, options or self.raster_options)
        cached = self.previews.get(raster.identity)
        if cached is not None:
            raster._preview, raster._stats = cached
        return raster

    def _resolve_boxes(self, raster: Raster, boxes: Sequence[Box], box_crs: str | None
                       ) -> tuple[list[tuple[float, float, float, float]], list[dict[str, Any]]]:
        from_map = box_crs is not None
        if not boxes:
            raise ValueError("--box: at least one box is required")
        out, metas = [], []
        for k, b in enumerate(boxes):
            if len(b) != 4:
                raise ValueError(f"--box #{k + 1}: expected 4 numbers x0 y0 x1 y1, got {list(b)}")
            box = (float(b[0]), float(b[1]), float(b[2]), float(b[3]))
            meta: dict[str, Any] = {}
            if from_map:
                from clvnet.inference.geo import map_box_to_pixels

                assert box_crs is not None
                meta = {"map_box": list(box), "box_crs": box_crs}
                box = map_box_to_pixels(box, box_crs, raster.crs, raster.transform, raster.name)
            x0, y0, x1, y1 = box
            if not all(math.isfinite(v) for v in box) or x1 <= x0 or y1 <= y0:
                raise ValueError(f"--box #{k + 1} {list(b)}: zero area or inverted corners (need x0 < x1, y0 < y1)")
            w, h = raster.width, raster.height
            if x1 <= 0 or y1 <= 0 or x0 >= w or y0 >= h:
                raise ValueError(f"--box #{k + 1} {list(b)}: lies outside the {w}x{h} image {raster.name}")
            if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
                if not from_map:
                    raise ValueError(f"--box #{k + 1} {list(b)}: extends past the {w}x{h} image {raster.name} "
                                     "(pixel boxes must lie inside the image)")
                log.warning("map box #%d reaches past %s; clipped to the image", k + 1, raster.name)
                meta["box_clipped"] = True
                box = (max(0.0, x0), max(0.0, y0), min(float(w), x1), min(float(h), y1))
            out.append(box)
            metas.append(meta)
        return out, metas

    def _query(self, query: str | None) -> str | None:
        """A user query; with box prompts on, ``<BOX>`` is appended when the query does not place it."""
        if query is None or not query.strip():
            return None
        return self._with_box(query.strip())

    def _with_box(self, query: str) -> str:
        cfg = getattr(self.model, "cfg", None)
        if getattr(cfg, "use_box_prompt", True) and "<BOX>" not in query:
            query = f"{query} (user-focused region <BOX>)"
        return query

    def _decode_budget(self, max_new_tokens: int | None = None) -> int:
        if max_new_tokens or self.max_new_tokens:
            return int(max_new_tokens or self.max_new_tokens or 0)
        return int(self.model.cfg.generation.max_new_tokens)

    def max_query_tokens(self, max_new_tokens: int | None = None) -> int | None:
        """Most tokens a query may have: the LLM context less the rest of the prompt (image and region tokens,
        template) and the decoding budget; None when the model states no context length."""
        proc = getattr(self.model, "processor", None)
        if proc is None or getattr(proc, "max_length", None) is None:
            return None
        fixed = len(proc.prompt_ids(self._with_box("")))
        return max(0, int(proc.max_length) - fixed - self._decode_budget(max_new_tokens))

    def query_tokens(self, query: str) -> int:
        """Tokens ``query`` adds to the prompt (with the model's own tokenizer)."""
        proc = self.model.processor
        return len(proc.prompt_ids(self._with_box(query.strip()))) - len(proc.prompt_ids(self._with_box("")))

    def check_query(self, query: str | None, max_new_tokens: int | None = None) -> None:
        """Raise ``ValueError`` when the model cannot take a question (:attr:`accepts_questions`), or when the
        prompt with ``query`` and the answer would not fit the LLM context.

        Nothing is truncated: past its context the model reads positions it never saw, and the work grows
        with the square of the length.
        """
        if query is None or not query.strip():
            return
        if not self.accepts_questions:
            raise ValueError("--query: this model cannot answer questions: it was trained without them (its model "
                             "card says so, or it has none; every training prompt was the one captioning "
                             "instruction). Leave out the query to get the caption.")
        limit = self.max_query_tokens(max_new_tokens)
        if limit is None:
            return
        n = self.query_tokens(query)
        if n > limit:
            ctx = self.model.processor.max_length
            raise ValueError(f"--query is {n} tokens long; this model takes at most {limit} (its context is {ctx} "
                             f"tokens, {self._decode_budget(max_new_tokens)} of them kept for the answer and the "
                             "rest for the image, the box and the prompt)")

    def _global_views(self, raster: Raster) -> tuple[np.ndarray, np.ndarray, Preview]:
        """(global view, grounding view, preview): both views are made from the preview's pixels."""
        preview = raster.preview()
        self.previews.put(raster.identity, (preview, raster._stats))
        view, gview = self.image_views.global_views(preview.rgb)
        return view, gview, preview

    def _region(self, raster: Raster, box: tuple[float, float, float, float]
                ) -> tuple[np.ndarray, tuple[float, float, float, float]]:
        grown = self.image_views.region_box(box, raster.width, raster.height)
        crop = raster.read_rgb(grown, max_side=self.region_max)
        return self.image_views.region(crop, grown, raster.width, raster.height)

    def _tensor(self, arrays: list[np.ndarray]) -> Any:
        import torch

        stacked = np.stack(arrays).astype(np.float32) / 255.0  # (B, H, W, 3)
        return torch.from_numpy(stacked).permute(0, 3, 1, 2).contiguous().to(self.device)

    def _features(self, view: np.ndarray, gview: np.ndarray, raster: Raster) -> tuple[Any, bool]:
        import torch

        digest = hashlib.sha1(view.tobytes())
        if gview is not view:
            digest.update(gview.tobytes())
        key = f"{digest.hexdigest()}:{view.shape}:{gview.shape}:{raster.height}x{raster.width}"
        feats = self.features.get(key)
        if feats is not None:
            return feats, True
        with torch.inference_mode():
            feats = self.model.encode_image(self._tensor([view]), self._tensor([gview]))
        self.features.put(key, feats)
        return feats, False

    # ------------------------------------------------------------------ prediction
    def predict(self, image: Any, boxes: Sequence[Box], query: str | None = None, stream: bool = False, *,
                box_crs: str | None = None, raster_options: RasterOptions | None = None,
                ids: Sequence[str] | None = None, max_new_tokens: int | None = None) -> Any:
        """Caption and segment each box of one image.

        Args:
            image: a path, an (H, W[, C]) numpy array or a PIL image.
            boxes: ``[x0, y0, x1, y1]`` per box, in pixels (x1/y1 exclusive), or in ``box_crs`` map
                coordinates (``xmin ymin xmax ymax``) for a georeferenced raster.
            query: optional text query (None = the model's default prompt).
            stream: return an iterator of text pieces and predictions instead of a list.
            box_crs: CRS of map-coordinate boxes (``EPSG:XXXX``), None = pixels.
            raster_options: band selection / stretch for this call (default: the predictor's).
            ids: one prediction id per box (default ``<image stem>_box<k>``).
            max_new_tokens: decoding budget for this call.

        Returns:
            ``list[GCGPrediction]`` (one per box, in order); with ``stream=True`` an iterator yielding
            ``str`` pieces and then the box's ``GCGPrediction``, box by box.

        Raises:
            ValueError: a bad box (names ``--box`` and the box), a bad band selection, or a query too long for
                the model's context (:meth:`check_query`).
            DataError: the image cannot be read (names the file).
        """
        t0 = time.perf_counter()
        self.check_query(query, max_new_tokens)
        raster = self._open(image, raster_options)
        try:
            pix_boxes, metas = self._resolve_boxes(raster, boxes, box_crs)
        except Exception:
            raster.close()
            raise
        stem = Path(str(image)).stem if raster.path is not None else "image"
        if ids is not None and len(ids) != len(pix_boxes):
            raise ValueError(f"ids: {len(ids)} ids for {len(pix_boxes)} boxes")
        names = list(ids) if ids is not None else [f"{stem}_box{k}" for k in range(len(pix_boxes))]
        job = _Job(raster=raster, boxes=pix_boxes, metas=metas, names=names, query=self._query(query), t0=t0,
                   max_new_tokens=max_new_tokens or self.max_new_tokens)
        if stream:
            return self._stream(job)
        try:
            out: list[GCGPrediction] = []
            for start in range(0, len(pix_boxes), self.batch_size):
                out.extend(self._run(job, range(start, min(len(pix_boxes), start + self.batch_size))))
            return out
        finally:
            raster.close()

    def _prepare(self, job: _Job, idx: range) -> tuple[Any, Any, Any, Any, Any, dict[str, float]]:
        import torch

        t = time.perf_counter()
        view, gview, _ = self._global_views(job.raster)
        regions, windows = zip(*(self._region(job.raster, job.boxes[k]) for k in idx))
        t_read = time.perf_counter() - t
        t = time.perf_counter()
        feats, hit = self._features(view, gview, job.raster)
        t_enc = time.perf_counter() - t
        w, h = job.raster.width, job.raster.height
        boxes = torch.tensor([[b[0] / w, b[1] / h, b[2] / w, b[3] / h] for b in (job.boxes[k] for k in idx)],
                             dtype=torch.float32, device=self.device)
        timings = {"read": t_read, "encode": t_enc, "cache_hit": float(hit)}
        region_windows = torch.tensor(windows, dtype=torch.float32, device=self.device)
        # one global view and one row of features, shared by every box of the batch
        return self._tensor([view]), self._tensor(list(regions)), boxes, region_windows, feats, timings

    def _generate(self, job: _Job, idx: range, streamer: Any = None) -> list[GCGPrediction]:
        import torch

        from clvnet.models import generate

        images, regions, boxes, region_windows, feats, timings = self._prepare(job, idx)
        t = time.perf_counter()
        with self._lock, torch.inference_mode():
            outs = generate(self.model, images, regions, boxes, query=job.query, image_features=feats,
                            max_new_tokens=job.max_new_tokens, streamer=streamer, region_windows=region_windows)
        timings["generate"] = time.perf_counter() - t
        if len(outs) != len(idx):
            raise RuntimeError(f"model returned {len(outs)} outputs for {len(idx)} boxes")
        return [self._finish(job, k, o, dict(timings)) for k, o in zip(idx, outs)]

    def _run(self, job: _Job, idx: range) -> list[GCGPrediction]:
        return self._generate(job, idx)

    def _finish(self, job: _Job, k: int, out: Any, timings: dict[str, float]) -> GCGPrediction:
        t = time.perf_counter()
        raster = job.raster
        logits = out.mask_logits.detach().float().cpu().numpy() if len(out.phrases) else np.zeros((0, 1, 1), np.float32)
        if logits.shape[0] != len(out.phrases):
            raise RuntimeError(f"model returned {logits.shape[0]} masks for {len(out.phrases)} phrases "
                               f"(box {job.names[k]})")
        scores = [float(s) for s in out.scores.detach().float().cpu().tolist()] if len(out.phrases) else []
        has_nodata = raster.preview().valid is not None
        phrases, windows = [], []
        for p, lg in zip(out.phrases, logits):
            rle, _, win = logits_to_rle(lg, raster.height, raster.width,
                                        valid=raster.read_valid if has_nodata else None)
            phrases.append(Phrase(text=p.text, span=(int(p.span[0]), int(p.span[1])), masks=[rle]))
            windows.append(win)
        timings["masks"] = time.perf_counter() - t
        timings["total"] = time.perf_counter() - job.t0
        meta = dict(job.metas[k])
        meta.update({"image_size": [raster.height, raster.width], "bands": list(raster.bands)})
        if job.query:
            meta["query"] = job.query
        image_str = str(raster.path) if raster.path is not None else "array"
        return GCGPrediction(image=image_str, height=raster.height, width=raster.width, box=job.boxes[k],
                             caption=out.caption, phrases=phrases, scores=scores,
                             global_end=split_caption(out.caption, phrases), tagged=out.tagged,
                             mask_logits=logits, mask_windows=windows, timings=timings, id=job.names[k], meta=meta)

    def _stream(self, job: _Job) -> Iterator[str | GCGPrediction]:
        import queue

        try:
            for k in range(len(job.boxes)):
                q: queue.Queue[Any] = queue.Queue()
                result: dict[str, Any] = {}

                def work(k: int = k, q: queue.Queue[Any] = q, result: dict[str, Any] = result) -> None:
                    try:
                        result["pred"] = self._generate(job, range(k, k + 1), lambda _b, text: q.put(text))[0]
                    except BaseException as exc:  # re-raised in the consumer
                        result["error"] = exc
                    finally:
                        q.put(_DONE)

                th = threading.Thread(target=work, daemon=True)
                th.start()
                while True:
                    item = q.get()
                    if item is _DONE:
                        break
                    yield item
                th.join()
                if "error" in result:
                    raise result["error"]
                yield result["pred"]
        finally:
            job.raster.close()


_DONE = object()


class _Job:
    """One ``predict`` call's state."""

    def __init__(self, *, raster: Raster, boxes: list[tuple[float, float, float, float]],
                 metas: list[dict[str, Any]], names: list[str], query: str | None, t0: float,
                 max_new_tokens: int | None) -> None:
        self.raster, self.boxes, self.metas, self.names = raster, boxes, metas, names
        self.query, self.t0, self.max_new_tokens = query, t0, max_new_tokens
