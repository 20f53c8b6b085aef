"""The trainer's side of the model card (:mod:`clvnet.models.card`): what the run trains on, gathered once.

:class:`CardFacts` is built from the training records when the trainer starts (data sources and versions,
a few images' colour statistics); :meth:`CardFacts.card` turns it into the card of one checkpoint.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clvnet.models.card import ImageStats, ModelCard, data_identity, installed_version, now_utc

log = logging.getLogger(__name__)
STATS_IMAGES = 16  # training images sampled (evenly over the file) for the colour statistics


@dataclass
class CardFacts:
    """What every checkpoint card of a run shares.

    Attributes:
        sources: training records per ``meta.source`` (``unknown`` when a record names none).
        versions: the data versions the records state (``meta.version``).
        image_stats: colour statistics of up to :data:`STATS_IMAGES` training images, or None.
        model_name: the model preset's name.
    """

    sources: dict[str, int] = field(default_factory=dict)
    versions: set[str] = field(default_factory=set)
    image_stats: ImageStats | None = None
    model_name: str = ""

    @classmethod
    def from_records(cls, records: Sequence[Any], root: str | Path, model_name: str = "") -> CardFacts:
        """Facts of a training set: ``records`` are its ``GCGRecord``s, ``root`` the folder of its JSONL."""
        sources: Counter[str] = Counter()
        versions: set[str] = set()
        for r in records:
            meta = r.meta if isinstance(r.meta, dict) else {}
            sources[str(meta.get("source") or "unknown")] += 1
            if meta.get("version") is not None:
                versions.add(str(meta["version"]))
        return cls(sources=dict(sources), versions=versions, image_stats=image_stats(records, root),
                   model_name=model_name)

    def card(self, *, steps: int, samples_seen: int) -> ModelCard:
        """The card of a checkpoint taken after ``steps`` optimiser steps.

        ``trained_with_questions`` is False: the trainer builds every prompt from the model's fixed
        instruction (the processor is called without per-record queries).
        """
        name, version = data_identity(self.sources, self.versions)
        return ModelCard(data_name=name, data_version=version, data_sources=dict(self.sources), steps=steps,
                         samples_seen=samples_seen, trained_with_questions=False, image_stats=self.image_stats,
                         model_name=self.model_name, created=now_utc(), clvnet_version=installed_version())


def image_stats(records: Sequence[Any], root: str | Path, n: int = STATS_IMAGES) -> ImageStats | None:
    """Per-channel mean and std of up to ``n`` training images spread over ``records`` (None when none reads).

    An image that cannot be read is skipped with a warning: the statistics only feed a warning in the demo,
    and the dataset reports unreadable images itself when it loads them.
    """
    from clvnet.data.images import load_image

    if not records:
        return None
    k = min(n, len(records))
    picks = range(len(records)) if k == len(records) else [i * (len(records) - 1) // max(k - 1, 1) for i in range(k)]
    sums, sq, count, used = np.zeros(3), np.zeros(3), 0, 0
    for i in picks:
        path = records[i].image_path(root)
        try:
            px = load_image(path).reshape(-1, 3).astype(np.float64)
        except (OSError, ValueError) as exc:
            log.warning("model card: image statistics skip %s (%s)", path, exc)
            continue
        sums += px.sum(0)
        sq += (px * px).sum(0)
        count += px.shape[0]
        used += 1
    if not used:
        return None
    mean = sums / count
    std = np.sqrt(np.maximum(sq / count - mean * mean, 0.0))
    return ImageStats(mean=[round(float(v), 3) for v in mean], std=[round(float(v), 3) for v in std], n_images=used)
