"""SynthRS scene and split generation (design §6).

Seeding: scene ``index`` of a split is generated from ``np.random.default_rng([scene_seed, index])``
with ``scene_seed = split_seed(seed, split)``; the same ``(seed, split, index)`` therefore always
gives a byte-identical PNG and record, and train / val / test generated with the same user seed use
disjoint seed spaces (``split_seed`` hashes the split name into the seed). Hard-mode degradations
use a separate stream ``default_rng([scene_seed, index, 1])``, so a hard scene has exactly the same
layout, objects, masks and caption as its clean twin; only the pixels differ.

Record meta: ``source`` ("synthrs"), ``scene_type``, ``landcover`` (classes present), ``hard`` (list
of degradations, empty when clean), ``direction_style`` ("image" or "compass"), ``num_objects``,
``seed`` / ``index`` (and ``split`` from :func:`generate_split`), and per phrase (same order as
``phrases``): ``classes``, ``in_box``, ``counts`` and ``instances`` (per instance: colour, sprite size
and orientation). ``relations`` lists ``[phrase_index, relation, target]`` where ``target`` is a
phrase index, a land-cover name (for ``on`` / ``along``) or ``"box"``.
"""

from __future__ import annotations

import math
import multiprocessing
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clvnet.data import rle as rle_utils
from clvnet.data.record import DataError, GCGRecord, Phrase, write_jsonl
from clvnet.data.synth import recipes
from clvnet.data.synth.captions import phrase_meta
from clvnet.data.synth.degrade import degrade
from clvnet.data.synth.describe import Describer, Plan
from clvnet.data.synth.landcover import LC_NAMES, SCENE_TYPES, Layout, build_layout, render_landcover
from clvnet.data.synth.placement import Scene
from clvnet.data.synth.png import write_png

_SCENE_P = np.array([0.22, 0.16, 0.14, 0.14, 0.1, 0.09, 0.15])  # order of SCENE_TYPES
_MIN_VISIBLE = 40  # px; objects hidden below this are left unmentioned
PNG_COMPRESS_LEVEL = 0  # zlib level of the PNGs: 0 stores them (fastest; see design §7); fixed per call, so files are byte-identical


# 1.1: the outside-the-box groups a caption names are the most salient ones, no longer a random pick
# (images and boxes of a seed are identical in 1.0 and 1.1; captions, phrases and their masks differ).
SYNTHRS_VERSION = "1.1"


def split_seed(seed: int, split: str) -> int:
    """Seed of a split's scenes: a 63-bit hash of ``(seed, split)``; different splits never share it."""
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    code = zlib.crc32(split.encode("utf-8"))
    state = np.random.SeedSequence([seed, code]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def _select_box(scene: Scene, rng: np.random.Generator, groups: list[int],
                geo: dict[int, tuple[float, float, float, float]]) -> Plan:
    """Pick a user-intent group of 1-6 objects (1-2 groups) and a jittered box around it."""
    s = scene.layout.size
    cands = [g for g in groups if len(scene.groups[g].ids) <= 6]
    w = np.array([(0.2 if scene.groups[g].cls == "tree" else 1.0) * (1.4 if len(scene.groups[g].ids) > 1 else 1.0)
                  for g in cands])
    a = cands[int(rng.choice(len(cands), p=w / w.sum()))]
    main = [a]
    ba = geo[a]
    if rng.random() < 0.55:
        best, best_d = None, 55.0
        for g in cands:
            if g == a or len(scene.groups[g].ids) + len(scene.groups[a].ids) > 6:
                continue
            bg = geo[g]
            d = float(np.hypot((bg[0] + bg[2] - ba[0] - ba[2]) / 2, (bg[1] + bg[3] - ba[1] - ba[3]) / 2))
            if d < best_d:
                best, best_d = g, d
        if best is not None:
            main.append(best)
    x0 = min(geo[g][0] for g in main)
    y0 = min(geo[g][1] for g in main)
    x1 = max(geo[g][2] for g in main)
    y1 = max(geo[g][3] for g in main)
    m = rng.uniform(2, 14, 4)
    box = (max(0.0, float(np.floor(x0 - m[0]))), max(0.0, float(np.floor(y0 - m[1]))),
           min(float(s), float(np.ceil(x1 + m[2]))), min(float(s), float(np.ceil(y1 + m[3]))))
    return Plan(main, box)


def generate_scene(seed: int, index: int, size: int = 256, hard: bool = False) -> tuple[np.ndarray, GCGRecord]:
    """Generate one scene: ``(image uint8 (size, size, 3), record)`` with RLE masks and a box.

    The record's ``image`` is ``synth_{index:06d}.png``; :func:`generate_split` renames it.
    """
    check_size(size)
    for attempt in range(20):
        rng = np.random.default_rng([seed, index, 0, attempt] if attempt else [seed, index])
        scene_type = SCENE_TYPES[int(rng.choice(len(SCENE_TYPES), p=_SCENE_P / _SCENE_P.sum()))]
        scene = new_scene(rng, size, build_layout(rng, size, scene_type))
        recipes.populate(scene)
        groups = valid_groups(scene)
        if groups:
            break
    else:  # pragma: no cover - every recipe places objects in practice
        raise RuntimeError(f"scene seed={seed} index={index}: no objects could be placed")
    plan = _select_box(scene, rng, groups, group_boxes(scene, groups))
    image, record, _ = finish_scene(scene, groups, plan, rng, seed, index, hard)
    return image, record


def check_size(size: int) -> None:
    """Scenes are at least 128 pixels wide (the recipes' margins and sprite sizes need the room)."""
    if size < 128:
        raise ValueError(f"size must be >= 128 pixels, got {size}")


def new_scene(rng: np.random.Generator, size: int, layout: Layout) -> Scene:
    """Texture ``layout`` and draw the scene's shadow offset: an empty :class:`Scene` ready for objects."""
    scene = Scene(layout, render_landcover(rng, layout), rng)
    sh = rng.integers(1, 4, 2)
    scene.shadow = (int(sh[0]), int(sh[1]))
    return scene


def group_boxes(scene: Scene, groups: list[int]) -> dict[int, tuple[float, float, float, float]]:
    """Tight box ``(x0, y0, x1, y1)`` of each group's visible pixels."""
    geo = {}
    for g in groups:
        st = [scene.stats(i) for i in scene.groups[g].ids]
        geo[g] = (float(min(t[2] for t in st)), float(min(t[3] for t in st)), float(max(t[4] for t in st)),
                  float(max(t[5] for t in st)))
    return geo


def finish_scene(scene: Scene, groups: list[int], plan: Plan, rng: np.random.Generator, seed: int, index: int,
                 hard: bool, prefer: int | None = None) -> tuple[np.ndarray, GCGRecord, Describer]:
    """Caption a populated scene for its box, encode the masks, and degrade the pixels in hard mode.

    ``prefer`` names the outside group the caption describes first (see :class:`Describer`).
    Returns ``(image, record, describer)``.
    """
    size = scene.layout.size
    style = "image" if rng.random() < 0.65 else "compass"
    desc = Describer(scene, groups, rng, style, prefer=prefer)
    builder = desc.write(plan)
    phrases = []
    for text, span, ref in builder.phrases:
        masks = []
        for i in ref.ids:
            m, (y0, y1, x0, x1) = scene.visible_mask(i)
            full = np.zeros((size, size), dtype=np.uint8, order="F")  # F order: no copy in pycocotools
            full[y0:y1, x0:x1] = m
            masks.append(rle_utils.encode(full))
        phrases.append(Phrase(text=text, span=span, masks=masks))
    img = scene.img
    hard_names: list[str] = []
    if hard:
        img, hard_names = degrade(np.random.default_rng([seed, index, 1]), img)
    # in place (the scene is done with its image): the values of np.clip(img + 0.5, 0, 255)
    np.add(img, np.float32(0.5), out=img)
    np.clip(img, 0, 255, out=img)
    image = img.astype(np.uint8)
    meta = {"source": "synthrs", "version": SYNTHRS_VERSION, "scene_type": scene.layout.scene_type,
            "seed": int(seed), "index": int(index), "hard": hard_names, "relations": desc.relations,
            "direction_style": style, "num_objects": len(scene.objects),
            "landcover": sorted({str(n) for n in _landcover_names(scene.layout.lc)})}
    meta.update(phrase_meta(builder))
    meta["instances"] = [[_attributes(scene, i) for i in ref.ids] for _, _, ref in builder.phrases]
    record = GCGRecord(image=f"synth_{index:06d}.png", height=size, width=size, caption=builder.text,
                       phrases=phrases, box=plan.box, meta=meta, id=f"synth_{index:06d}")
    return image, record, desc


def _attributes(scene: Scene, i: int) -> dict[str, object]:
    """Per-instance attributes: colour name, sprite size (length, width) in px, orientation in degrees."""
    o = scene.objects[i]
    return {"color": o.app.color, "size": [round(o.app.length, 1), round(o.app.width, 1)],
            "angle": round(float(np.degrees(o.angle)) % 180.0, 1)}


def _landcover_names(lc: np.ndarray) -> list[str]:
    """Names of the land-cover classes present (one bit per class, OR-ed over the map)."""
    bits = int(np.bitwise_or.reduce(np.left_shift(1, lc, dtype=np.uint16), axis=None))
    return [LC_NAMES[i] for i in range(len(LC_NAMES)) if bits >> i & 1]


def valid_groups(scene: Scene) -> list[int]:
    """Drop instances whose visible area fell below the minimum; return the non-empty groups."""
    keep = []
    for g, grp in enumerate(scene.groups):
        ids = []
        for i in grp.ids:
            m, _ = scene.visible_mask(i)
            if int(m.sum()) >= _MIN_VISIBLE:
                ids.append(i)
            else:
                scene.objects[i].group = -1
        grp.ids = ids
        if len(ids) < 2:
            grp.kind = "single"
        if ids:
            keep.append(g)
    return keep


def generate_split(out_dir: Path, num: int, seed: int, size: int = 256, split: str = "train",
                   hard: bool = False, *, twins: bool = False, workers: int = 1,
                   png_level: int = PNG_COMPRESS_LEVEL) -> Path:
    """Write ``num`` scenes to ``out_dir/images/{split}_{i:06d}.png`` and ``out_dir/records.jsonl``.

    Returns the JSONL path. Scenes use the seed space ``split_seed(seed, split)`` (see module doc).

    Args:
        twins: write SynthRS-hard twin scenes (:mod:`clvnet.data.synth.twins`) instead of ordinary ones.
        workers: processes that generate scenes in parallel; every scene depends only on its
            ``(seed, split, index)``, so the files are the same bytes for any number of workers.
        png_level: zlib level of the PNGs (0 stores them uncompressed; pixels are the same at any level).
    """
    if num < 0:
        raise DataError(f"number of scenes must be >= 0, got {num}", field="num")
    if workers < 1:
        raise DataError(f"workers must be >= 1, got {workers}", field="workers")
    if not 0 <= png_level <= 9:
        raise DataError(f"PNG compress level must be 0-9, got {png_level}", field="png_level")
    check_size(size)
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    job = _SplitJob(str(out_dir), split_seed(seed, split), size, split, hard, twins, png_level)
    if workers == 1 or num < 2:
        records = job(0, num)
    else:
        # contiguous chunks, a few per worker for balance, collected in index order
        step = max(1, math.ceil(num / (4 * workers)))
        starts = list(range(0, num, step))
        ctx = multiprocessing.get_context("spawn")  # no fork of a parent that may hold threads (torch, BLAS)
        with ProcessPoolExecutor(max_workers=min(workers, len(starts)), mp_context=ctx) as pool:
            chunks = pool.map(job, starts, [min(num, a + step) for a in starts])
            records = [r for chunk in chunks for r in chunk]
    path = out_dir / "records.jsonl"
    write_jsonl(records, path)
    return path


@dataclass(frozen=True)
class _SplitJob:
    """Generates and writes scenes ``start..stop-1`` of one split (picklable, for worker processes)."""

    out_dir: str
    sseed: int
    size: int
    split: str
    hard: bool
    twins: bool
    png_level: int

    def __call__(self, start: int, stop: int) -> list[GCGRecord]:
        if self.twins:
            from clvnet.data.synth.twins import generate_twin_scene as make
        else:
            make = generate_scene
        records = []
        for i in range(start, stop):
            img, rec = make(self.sseed, i, size=self.size, hard=self.hard)
            name = f"{self.split}_{i:06d}"
            rec.image, rec.id = f"images/{name}.png", name
            rec.meta["split"] = self.split
            write_png(Path(self.out_dir) / rec.image, img, self.png_level)
            records.append(rec)
        return records
