"""Training samples (design §8.3): :class:`GCGDataset`, :func:`collate_gcg` and the flip augmentation.

Each sample is a dict::

    image         float (3, S, S) in [0, 1]  global view: the whole image resized (stretched) to image_size
    grounding_image float (3, G, G) in [0, 1]  grounding view: the whole image resized to grounding_size
                                             (the same tensor as ``image`` when the two sizes are equal)
    region        float (3, R, R) in [0, 1]  the box crop at native resolution, resized to region_size
    region_window float (4,)                 normalised xyxy of the image area the region canvas spans
    box           float (4,)                 normalised xyxy box in [0, 1] ([0, 0, 1, 1] when box is null)
    masks         float (N, M, M) in {0, 1}  per-phrase union masks over the global view at mask_size
    target        str                        tagged text ``... <p> two cars </p> [SEG] ...``
    caption       str                        plain caption
    phrase_texts  list[str]
    id            str

Every size and the image preprocessing come from :class:`clvnet.data.views.ImageViews`, which the model
builds from its preset and the trainer passes in (the predictor uses the same object, so training and
inference prepare images alike). A data config may repeat a size only if it agrees with the model's.

Horizontal flip (``hflip`` probability, training only) mirrors the image, box and masks and swaps
left/right and east/west words in the target (``left``, ``top-left``, ``upper left``, ``northwest``,
``north-east``, ``leftmost`` ...); the caption and spans are rebuilt from the flipped tagged text so
they stay exact. Homographs ("the car left the lot", "right angle") are swapped too.
"""

from __future__ import annotations

import json
import random
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from clvnet.data import rle as rle_utils
from clvnet.data.images import load_image
from clvnet.data.record import DataError, FieldError, GCGRecord, decode_line, from_tagged, validate
from clvnet.data.views import ImageViews

_HFLIP_PAIRS = {
    "left": "right", "leftmost": "rightmost", "lefthand": "righthand", "leftward": "rightward",
    "leftwards": "rightwards", "east": "west", "eastern": "western", "eastward": "westward",
    "eastwards": "westwards", "easterly": "westerly", "northeast": "northwest", "southeast": "southwest",
    "northeastern": "northwestern", "southeastern": "southwestern", "ne": "nw", "se": "sw",
}
_HFLIP = {**_HFLIP_PAIRS, **{v: k for k, v in _HFLIP_PAIRS.items()}}
# `\b` treats '-' as a boundary, so "top-left" and "north-east" are handled word by word.
_HFLIP_RE = re.compile(r"\b(" + "|".join(sorted(_HFLIP, key=len, reverse=True)) + r")\b", re.IGNORECASE)
_ABBREV = {"ne", "nw", "se", "sw"}  # only swapped when written in capitals (NE, SW ...)


def _match_case(word: str, repl: str) -> str:
    if word.isupper():
        return repl.upper()
    if word[:1].isupper():
        return repl[:1].upper() + repl[1:]
    return repl


def swap_left_right(text: str) -> str:
    """Mirror the horizontal spatial words of a text (case preserved); tags are left untouched."""

    def sub(m: re.Match[str]) -> str:
        w = m.group(0)
        if w.lower() in _ABBREV and not w.isupper():
            return w
        return _match_case(w, _HFLIP[w.lower()])

    return _HFLIP_RE.sub(sub, text)


@dataclass
class DatasetConfig:
    """Settings of :class:`GCGDataset`.

    The input sizes (``image_size``, ``region_size``, ``mask_size``, ``min_region``, ``region_resize``) belong to
    the model (:class:`~clvnet.data.views.ImageViews`); here they are None unless a config repeats them, and a
    value that contradicts the model's is an error when training starts.
    """

    image_size: int | None = None
    region_size: int | None = None
    mask_size: int | None = None
    min_region: int | None = None
    region_resize: Literal["pad", "stretch"] | None = None
    hflip: float = 0.0  # probability, training only
    root: str | None = None  # image root; default: the JSONL's folder
    validate: bool = True  # validate each record (spans, box, RLE sizes) when it is read
    # Keep each prepared sample (per flip variant, as uint8) in memory after its first read, up to this many
    # MB (0 = off). Epochs after the first then skip PNG/RLE decoding and resizing. The cache lives in the
    # process that reads, so use it with ``num_workers: 0`` (loader workers are rebuilt every epoch).
    cache_mb: int = 0

    def __post_init__(self) -> None:
        if self.cache_mb < 0:
            raise ValueError(f"DatasetConfig.cache_mb must be >= 0, got {self.cache_mb}")
        for name in SIZE_KEYS[:4]:
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"DatasetConfig.{name} must be >= 1, got {value}")
        if not 0.0 <= self.hflip <= 1.0:
            raise ValueError(f"DatasetConfig.hflip is a probability in [0, 1], got {self.hflip}")

    def sizes(self) -> dict[str, Any]:
        """The input sizes this config sets (not None)."""
        return {k: getattr(self, k) for k in SIZE_KEYS if getattr(self, k) is not None}


SIZE_KEYS = ("image_size", "region_size", "mask_size", "min_region", "region_resize")


class GCGDataset(Dataset[dict[str, Any]]):
    """Grounded-captioning samples from a JSONL of :class:`GCGRecord` (lazy: byte offsets only).

    Args:
        source: a JSONL path, or a list of records (image paths then resolve against ``cfg.root``).
        cfg: dataset settings.
        train: enables the random augmentation (``cfg.hflip``).
        seed: base seed of the augmentation; sample ``i`` in epoch ``e`` (see :meth:`set_epoch`)
            draws from ``(seed, e, i)``, so runs are reproducible with any number of workers.
        views: the model's input sizes and preprocessing (``model.processor.views``). Without it (data
            tools that have no model) the sizes set in ``cfg`` are used, the defaults otherwise.

    Raises:
        ValueError: a size set in ``cfg`` contradicts ``views`` (both values are named).
    """

    def __init__(self, source: str | Path | list[GCGRecord], cfg: DatasetConfig | None = None,
                 train: bool = False, seed: int = 0, views: ImageViews | None = None) -> None:
        self.cfg = cfg or DatasetConfig()
        if views is None:
            views = ImageViews(**self.cfg.sizes())
        for key, value in self.cfg.sizes().items():
            if getattr(views, key) != value:
                raise ValueError(f"data.dataset.{key}={value} contradicts the model's {key}={getattr(views, key)} "
                                 "(input sizes come from the model preset; remove the data key)")
        self.views = views
        self.train, self.seed, self.epoch = train, seed, 0
        self._records: list[GCGRecord] | None = None
        self._cache: dict[tuple[int, bool], dict[str, Any]] = {}
        self._cache_bytes, self._cache_full = 0, False
        self._offsets: list[tuple[int, int]] = []  # (byte offset, line number)
        if isinstance(source, (str, Path)):
            self.path: Path | None = Path(source)
            self.root = Path(self.cfg.root) if self.cfg.root else self.path.parent
            self._index()
        else:
            self.path = None
            self.root = Path(self.cfg.root) if self.cfg.root else Path(".")
            self._records = list(source)

    def _index(self) -> None:
        assert self.path is not None
        if not self.path.is_file():
            raise DataError("file not found", file=self.path)
        with self.path.open("rb") as f:
            pos = 0
            for lineno, line in enumerate(f, 1):
                body = line.strip()
                if body:
                    if not body.endswith(b"}"):
                        raise DataError(f"line {lineno} is truncated (does not end with '}}')", file=self.path,
                                        record=f"line {lineno}")
                    self._offsets.append((pos, lineno))
                pos += len(line)

    def __len__(self) -> int:
        return len(self._records) if self._records is not None else len(self._offsets)

    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation draw (call once per epoch)."""
        self.epoch = epoch

    def iter_records(self) -> Iterator[GCGRecord]:
        """Every record in order (e.g. the training captions for a tokenizer), parsed one at a time."""
        for i in range(len(self)):
            yield self.record(i)

    def record(self, i: int) -> GCGRecord:
        """The i-th record, parsed (and validated if ``cfg.validate``)."""
        if self._records is not None:
            rec = self._records[i]
            where: str | Path | None = None
        else:
            assert self.path is not None
            off, lineno = self._offsets[i]
            with self.path.open("rb") as f:
                f.seek(off)
                line = f.readline()
            try:
                rec = GCGRecord.from_dict(json.loads(decode_line(line, self.path, lineno)))
            except json.JSONDecodeError as exc:
                raise DataError(f"line {lineno} is not valid JSON (truncated?): {exc.msg}", file=self.path,
                                record=f"line {lineno}") from exc
            except FieldError as exc:
                raise DataError(f"line {lineno} is not a GCG record: {exc}", file=self.path,
                                record=f"line {lineno}", field=exc.field) from None
            where = f"{self.path}:{lineno}"
        if self.cfg.validate:
            validate(rec, file=where)
        return rec

    def __getitem__(self, i: int) -> dict[str, Any]:
        rng = random.Random(f"{self.seed}|{self.epoch}|{i}")
        flip = self.train and self.cfg.hflip > 0 and rng.random() < self.cfg.hflip
        sample = self._cache.get((i, flip)) if self.cfg.cache_mb else None
        if sample is None:
            sample = self._prepare(i, flip)
            if self.cfg.cache_mb:
                self._store((i, flip), sample)
        out = dict(sample)
        out["image"] = sample["image"].float().div_(255.0)
        out["grounding_image"] = (out["image"] if sample["grounding_image"] is sample["image"]
                                  else sample["grounding_image"].float().div_(255.0))
        out["region"] = sample["region"].float().div_(255.0)
        out["masks"] = sample["masks"].float()
        out["region_window"] = sample["region_window"].clone()
        out["box"] = sample["box"].clone()
        out["phrase_texts"] = list(sample["phrase_texts"])
        return out

    def _store(self, key: tuple[int, bool], sample: dict[str, Any]) -> None:
        size = sum(v.nbytes for v in {id(v): v for v in sample.values() if isinstance(v, torch.Tensor)}.values())
        if self._cache_bytes + size > self.cfg.cache_mb * 2**20:
            if not self._cache_full:
                self._cache_full = True
                warnings.warn(f"dataset cache of {self.path or 'records'} is full ({self.cfg.cache_mb} MB, "
                              f"{len(self._cache)} samples); later samples are decoded on every read", stacklevel=3)
            return
        self._cache[key] = sample
        self._cache_bytes += size

    def _prepare(self, i: int, flip: bool) -> dict[str, Any]:
        """Sample ``i`` with images as uint8 (3, H, W) tensors and masks as uint8 {0, 1}."""
        rec = self.record(i)
        path = rec.image_path(self.root)
        img = load_image(path)
        if img.shape[:2] != (rec.height, rec.width):
            raise DataError(f"image {path} is {img.shape[0]}x{img.shape[1]} but the record says "
                            f"{rec.height}x{rec.width}", file=self.path, record=rec.id, field="height/width")
        h, w = rec.height, rec.width
        box = rec.box if rec.box is not None else (0.0, 0.0, float(w), float(h))
        masks = [rle_utils.union(p.masks, h, w) for p in sorted(rec.phrases, key=lambda p: p.span)]
        tagged = rec.tagged()
        if flip:
            img = np.ascontiguousarray(img[:, ::-1])
            masks = [np.ascontiguousarray(m[:, ::-1]) for m in masks]
            box = (w - box[2], box[1], w - box[0], box[3])
            tagged = swap_left_right(tagged)
        caption, phrases = from_tagged(tagged)
        if len(phrases) != len(masks):  # the record's own text contains tags: refuse rather than misalign
            raise DataError(f"tagged text parses into {len(phrases)} phrases but the record has {len(masks)}",
                            file=self.path, record=rec.id, field="caption")
        v = self.views
        grown = v.region_box(box, w, h)
        region, window = v.region(img[grown[1]:grown[3], grown[0]:grown[2]], grown, w, h)
        view, gview = v.global_views(img)
        image = _to_uint8(view)
        return {
            "image": image,
            "grounding_image": image if gview is view else _to_uint8(gview),
            "region": _to_uint8(region),
            "region_window": torch.tensor(window, dtype=torch.float32),
            "box": torch.tensor([box[0] / w, box[1] / h, box[2] / w, box[3] / h], dtype=torch.float32),
            "masks": torch.from_numpy(v.masks(masks)),
            "target": tagged,
            "caption": caption,
            "phrase_texts": [p.text for p in phrases],
            "id": rec.id,
        }

    def plot(self, i: int, *, title: bool = True) -> Image.Image:
        """The i-th sample (with its augmentation) as an overlay: global view, masks, box, caption."""
        from clvnet.viz import render_overlay

        smp = self[i]
        img = (smp["image"].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
        s = img.shape[0]
        caption, phrases = from_tagged(smp["target"])
        box = (smp["box"] * s).tolist()
        return render_overlay(img, smp["masks"].numpy(), phrases, box=box, caption=caption,
                              title=smp["id"] if title else None)


def _to_uint8(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def collate_gcg(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Batch samples: tensors stacked, masks padded to (B, Nmax, M, M) with ``mask_valid`` (B, Nmax) bool.

    String and list fields become lists of length B.
    """
    if not samples:
        raise ValueError("collate_gcg needs at least one sample")
    out: dict[str, Any] = {k: torch.stack([s[k] for s in samples]) for k in ("image", "region", "box",
                                                                            "region_window")}
    shared = all(s["grounding_image"] is s["image"] for s in samples)   # equal view sizes: one tensor
    out["grounding_image"] = out["image"] if shared else torch.stack([s["grounding_image"] for s in samples])
    m = samples[0]["masks"].shape[-1]
    nmax = max(s["masks"].shape[0] for s in samples)
    masks = torch.zeros((len(samples), nmax, m, m), dtype=torch.float32)
    valid = torch.zeros((len(samples), nmax), dtype=torch.bool)
    for b, s in enumerate(samples):
        n = s["masks"].shape[0]
        if s["masks"].shape[-2:] != (m, m):
            raise ValueError(f"sample {s['id']} has masks of size {tuple(s['masks'].shape[-2:])}, expected {(m, m)}")
        masks[b, :n] = s["masks"]
        valid[b, :n] = True
    out.update(masks=masks, mask_valid=valid)
    for k in ("target", "caption", "phrase_texts", "id"):
        out[k] = [s[k] for s in samples]
    return out


__all__ = ["SIZE_KEYS", "DatasetConfig", "GCGDataset", "collate_gcg", "swap_left_right"]
