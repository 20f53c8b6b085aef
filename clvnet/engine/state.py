"""The trainer's resumable state and model construction for fresh or resumed runs."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clvnet.config import ConfigError, load_config, to_dict

if TYPE_CHECKING:
    from clvnet.models.modeling import CLVNet


@dataclass
class TrainState:
    """Everything besides weights, optimiser and RNG that a resumed run needs (``trainer_state.json``).

    Attributes:
        step: optimiser steps taken.
        epoch: current epoch.
        position: samples of this epoch already consumed by each rank.
        elapsed: wall-clock seconds of training so far (the time budget counts it).
        warmup_elapsed: ``elapsed`` when warm-up ended (start of a time-based cosine).
        best_value / best_step / best_path: best validation metric so far and its checkpoint.
        nonfinite_streak: non-finite losses in a row.
        world_size: processes of the run that saved the state.
        scheduler: the lr scheduler's state.
    """

    step: int = 0
    epoch: int = 0
    position: int = 0
    elapsed: float = 0.0
    warmup_elapsed: float | None = None
    best_value: float | None = None
    best_step: int | None = None
    best_path: str | None = None
    nonfinite_streak: int = 0
    world_size: int = 1
    scheduler: dict[str, Any] = field(default_factory=dict)
    # running sums between log rows (not saved)
    loss_sums: dict[str, float] = field(default_factory=dict, metadata={"transient": True})
    loss_count: int = field(default=0, metadata={"transient": True})
    grad_norm: float = field(default=0.0, metadata={"transient": True})
    scheduler_lr: float = field(default=0.0, metadata={"transient": True})

    def to_dict(self) -> dict[str, Any]:
        """The persistent fields as a JSON-able dict."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if not f.metadata.get("transient")}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainState:
        """Inverse of :meth:`to_dict`; unknown keys raise naming the key."""
        names = {f.name for f in dataclasses.fields(cls) if not f.metadata.get("transient")}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"trainer_state.json has unknown key '{unknown[0]}'")
        return cls(**d)


def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b)):
            key = f"{prefix}{k}"
            if k not in a or k not in b:
                out.append(f"{key} (only in {'checkpoint' if k in b else 'config'})")
            else:
                out += _diff(a[k], b[k], key + ".")
        return out
    return [] if a == b else [f"{prefix.rstrip('.')}: config {a!r} vs checkpoint {b!r}"]


def check_model_config(model_cfg: Any, ckpt_dir: Path) -> None:
    """Raise ``ValueError`` listing every model key whose value differs from the checkpoint's."""
    saved = ckpt_dir / "config.yaml"
    if not saved.is_file():
        raise FileNotFoundError(f"{ckpt_dir} has no config.yaml: not a model checkpoint")
    try:
        theirs = load_config(type(model_cfg), saved)
    except ConfigError as exc:
        raise ValueError(f"checkpoint {ckpt_dir} was saved by a different model config: {exc}") from exc
    diffs = _diff(to_dict(model_cfg), to_dict(theirs))
    if diffs:
        raise ValueError(f"checkpoint {ckpt_dir} does not match the model config; mismatching keys: "
                         + "; ".join(diffs))


def build_or_resume_model(model_cfg: Any, captions: list[str], resume_dir: Path | None) -> CLVNet:
    """A fresh model from ``model_cfg`` or the (strictly loaded) model of ``resume_dir``.

    Args:
        model_cfg: the run's ``CLVNetConfig``.
        captions: training captions (the tiny preset builds its tokenizer from them).
        resume_dir: checkpoint folder or ``None``.

    Raises:
        ValueError: the checkpoint's model config differs (the message lists the keys), its weights do
            not match the model (the model's strict loader names them), or a weights file is unreadable.
    """
    from clvnet.models import build_model, from_pretrained

    if resume_dir is None:
        return build_model(model_cfg, captions)
    check_model_config(model_cfg, resume_dir)
    from safetensors import SafetensorError

    try:
        # the run's own config (equal to the checkpoint's, checked above) is the user's consent to remote code
        return from_pretrained(resume_dir, device="cpu", trust_remote_code=model_cfg.llm.trust_remote_code)
    except SafetensorError as exc:  # damaged after Trainer's check_checkpoint, or a file it does not list
        raise ValueError(f"checkpoint {resume_dir}: cannot read its weights ({exc})") from None
