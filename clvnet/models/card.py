"""The model card: what a checkpoint was trained on, and how well it did, saved as ``model_card.json``.

The trainer writes a card into every checkpoint folder it saves (data name and version, steps, samples, whether
the prompts carried user questions, the training images' colour statistics); the quickstart and ``clvnet eval``
add the test metrics. The demo and ``clvnet predict`` show it, so nobody mistakes a model trained on synthetic
scenes for one that knows real imagery.

The card is a leaf of the models package: it imports nothing from clvnet, so any layer may read it.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

CARD_FILE = "model_card.json"
SCHEMA = 1
SYNTHRS = "synthrs"


class CardError(ValueError):
    """A ``model_card.json`` that cannot be read; the message names the file and the field."""


@dataclass
class ImageStats:
    """Per-channel statistics of training images (8-bit RGB), for a cheap out-of-distribution check.

    Attributes:
        mean: mean of R, G, B over the sampled images' pixels (0-255).
        std: standard deviation of R, G, B over those pixels.
        n_images: how many training images were sampled.
    """

    mean: list[float]
    std: list[float]
    n_images: int


@dataclass
class ModelCard:
    """What a checkpoint was trained on and how it scored.

    Attributes:
        data_name: the training data's source (``synthrs``, ``geopixeld``, ...); sources joined by ``+`` when
            mixed; ``unknown`` when the records do not say.
        data_version: the data's version when it states one (SynthRS does), else ``""``.
        data_sources: number of training records per source.
        steps: optimiser steps taken.
        samples_seen: training samples consumed (steps x batch x accumulation x processes).
        trained_with_questions: whether training prompts carried user questions (otherwise every prompt was
            the fixed captioning instruction, and a user question is a prompt the model never saw).
        metrics: test metrics per split, e.g. ``{"synthrs-test": {"mIoU": 71.2, "METEOR": 38.0}}``.
        image_stats: the training images' colour statistics, or None.
        model_name: the model preset's name.
        created: UTC time the card was written (ISO 8601).
        clvnet_version: the clvnet version that wrote it.
    """

    data_name: str
    data_version: str = ""
    data_sources: dict[str, int] = field(default_factory=dict)
    steps: int = 0
    samples_seen: int = 0
    trained_with_questions: bool = False
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    image_stats: ImageStats | None = None
    model_name: str = ""
    created: str = ""
    clvnet_version: str = ""

    @property
    def synthetic_only(self) -> bool:
        """True when every training record came from SynthRS."""
        return self.data_name == SYNTHRS

    def summary(self) -> str:
        """One line: data, steps, and each split's metrics."""
        data = self.data_name + (f" {self.data_version}" if self.data_version else "")
        if self.synthetic_only:
            data += " (synthetic scenes only, not real imagery)"
        parts = [f"model card: trained on {data}", f"{self.steps:,} steps", f"{self.samples_seen:,} samples"]
        parts.append("with questions" if self.trained_with_questions else "no questions in training")
        for split, vals in self.metrics.items():
            shown = ", ".join(f"{k} {v:.1f}" for k, v in vals.items())
            parts.append(f"{split}: {shown}" if shown else split)
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (with the schema number)."""
        return {"schema": SCHEMA, **asdict(self)}

    @classmethod
    def from_dict(cls, d: Any, source: str = CARD_FILE) -> ModelCard:
        """Inverse of :meth:`to_dict`; raises :class:`CardError` naming ``source`` and the bad field."""
        if not isinstance(d, dict):
            raise CardError(f"{source}: expected a JSON object, got {type(d).__name__}")
        known = {f.name for f in fields(cls)} | {"schema"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise CardError(f"{source}: unknown field(s) {unknown}")
        if "data_name" not in d:
            raise CardError(f"{source}: missing field 'data_name'")
        kw: dict[str, Any] = {}
        for name, check in _CHECKS.items():
            if name in d:
                kw[name] = check(d[name], f"{source}: field '{name}'")
        return cls(**kw)


def _str(v: Any, where: str) -> str:
    if not isinstance(v, str):
        raise CardError(f"{where}: expected a string, got {v!r}")
    return v


def _int(v: Any, where: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise CardError(f"{where}: expected a non-negative integer, got {v!r}")
    return v


def _bool(v: Any, where: str) -> bool:
    if not isinstance(v, bool):
        raise CardError(f"{where}: expected true or false, got {v!r}")
    return v


def _num(v: Any, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise CardError(f"{where}: expected a finite number, got {v!r}")
    return float(v)


def _sources(v: Any, where: str) -> dict[str, int]:
    if not isinstance(v, dict):
        raise CardError(f"{where}: expected an object of counts, got {v!r}")
    return {_str(k, where): _int(n, f"{where}[{k!r}]") for k, n in v.items()}


def _metrics(v: Any, where: str) -> dict[str, dict[str, float]]:
    if not isinstance(v, dict):
        raise CardError(f"{where}: expected {{split: {{metric: value}}}}, got {v!r}")
    out = {}
    for split, vals in v.items():
        if not isinstance(vals, dict):
            raise CardError(f"{where}[{split!r}]: expected {{metric: value}}, got {vals!r}")
        out[_str(split, where)] = {_str(k, where): _num(x, f"{where}[{split!r}][{k!r}]") for k, x in vals.items()}
    return out


def _stats(v: Any, where: str) -> ImageStats | None:
    if v is None:
        return None
    if not isinstance(v, dict) or set(v) != {"mean", "std", "n_images"}:
        raise CardError(f"{where}: expected {{mean, std, n_images}} or null, got {v!r}")
    triples = []
    for key in ("mean", "std"):
        xs = v[key]
        if not isinstance(xs, list) or len(xs) != 3:
            raise CardError(f"{where}.{key}: expected 3 numbers (R, G, B), got {xs!r}")
        triples.append([_num(x, f"{where}.{key}") for x in xs])
    return ImageStats(mean=triples[0], std=triples[1], n_images=_int(v["n_images"], f"{where}.n_images"))


_CHECKS: dict[str, Any] = {
    "data_name": _str, "data_version": _str, "data_sources": _sources, "steps": _int, "samples_seen": _int,
    "trained_with_questions": _bool, "metrics": _metrics, "image_stats": _stats, "model_name": _str,
    "created": _str, "clvnet_version": _str,
}


def data_identity(sources: dict[str, int], versions: set[str]) -> tuple[str, str]:
    """``(data_name, data_version)`` from per-source record counts and the versions the records state."""
    names = sorted(s for s in sources if sources[s] > 0)
    name = "+".join(names) if names else "unknown"
    version = next(iter(versions)) if len(versions) == 1 else "+".join(sorted(versions))
    return name, version


def installed_version() -> str:
    """The installed clvnet version ("" when the package metadata is missing, e.g. a bare source tree)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("clvnet")
    except PackageNotFoundError:
        return ""


def now_utc() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def save_card(folder: str | Path, card: ModelCard) -> Path:
    """Write ``folder/model_card.json`` atomically (a temporary file renamed into place); returns its path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / CARD_FILE
    fd, tmp = tempfile.mkstemp(prefix=".model_card-", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(card.to_dict(), fh, indent=1)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_card(folder: str | Path) -> ModelCard | None:
    """The card in ``folder``, or None when it has none.

    Raises:
        CardError: the file exists but is not valid JSON or has a bad field (the message names the file).
    """
    path = Path(folder) / CARD_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CardError(f"{path}: not valid JSON ({exc})") from None
    return ModelCard.from_dict(data, source=str(path))


def card_line(folder: str | Path) -> str:
    """The card of ``folder`` in one line for a console header; never raises on a bad card (it says so)."""
    try:
        card = load_card(folder)
    except CardError as exc:
        return f"model card: unreadable ({exc})"
    return "model card: none (this checkpoint was saved without one)" if card is None else card.summary()


def add_metrics(folder: str | Path, split: str, metrics: dict[str, Any]) -> ModelCard | None:
    """Add ``split``'s numeric metrics (top-level numbers only) to the card in ``folder``; None without a card."""
    card = load_card(folder)
    if card is None:
        return None
    card.metrics[split] = {k: float(v) for k, v in metrics.items()
                           if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
    save_card(folder, card)
    return card
