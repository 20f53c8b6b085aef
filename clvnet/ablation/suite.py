"""The ablation variants, their resolved configs, and which of them are the same run.

A :class:`Variant` is an ordinary experiment config (``clvnet train --config synthrs_ablation/NAME`` runs
it by hand). :func:`plan` resolves every variant with the suite's overrides and gives each two keys:

* the *training key*: a hash of everything that changes the trained weights (the resolved config less
  its run-local fields, with switched-off loss terms normalised, see :func:`effective_config`);
  variants that share it share their training runs (the greedy-decoding variant reuses the full
  model's checkpoints);
* the *evaluation key*: the training key plus the decoding settings; variants that share it are one
  run shown on several rows (lambda = 0 and "neither loss", or the full model's own lambda).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clvnet.config import load_config, to_dict
from clvnet.engine.config import TrainConfig


@dataclass(frozen=True)
class Variant:
    """One row of the ablation table.

    Attributes:
        name: short id (folder and ``--variants`` name).
        label: the row's label in the table.
        config: a shipped experiment name (``synthrs_ablation/full``) or a YAML file.
        paper: ``(table, row)`` of :data:`clvnet.ablation.paper.TABLES` for the paper's difference, or
            ``None`` (not in the paper: "n/a").
    """

    name: str
    label: str
    config: str
    paper: tuple[str, str] | None = None


def _v(name: str, label: str, paper: tuple[str, str] | None = None) -> Variant:
    return Variant(name, label, f"synthrs_ablation/{name}", paper)


PAPER_SUITE: tuple[Variant, ...] = (
    _v("full", "full model"),
    _v("no_box_prompt", "w/o box prompt", ("II", "CLV-Net (w/o Prompt)")),
    _v("no_cgformer", "w/o CGFormer", ("III", "CLV-Net (w/o CGFormer)")),
    _v("sam_decoder", "SAM decoder instead of SAM2", ("III", "CLV-Net (SAM)")),
    _v("no_csc", "w/o L_csc", ("IV", "L_rec only")),
    _v("no_rec", "w/o L_rec", ("IV", "L_csc only")),
    _v("no_sralign", "w/o L_csc and L_rec", ("IV", "neither")),
    _v("lambda_0", "λ = 0", ("V", "lambda = 0")),
    _v("lambda_0_5", "λ = 0.5", ("V", "lambda = 0.5")),
    _v("lambda_1", "λ = 1", ("V", "lambda = 1")),
    _v("lambda_5", "λ = 5", ("V", "lambda = 5")),
    _v("no_feed_llm", "w/o grounding.feed_llm"),
    _v("no_box_mark", "w/o region.box_mark"),
    _v("greedy", "greedy decoding (no beam search)"),
)
SUITES: dict[str, tuple[Variant, ...]] = {"paper": PAPER_SUITE}
FULL = "full"

# Fields that do not change the trained weights: where the run writes, how it logs and validates,
# how many threads and how much cache it uses, and the seed (a run is a (key, seed) pair).
RUN_LOCAL: frozenset[str] = frozenset({
    "output_dir", "data.train", "data.val", "data.test", "data.num_workers", "data.val_max_samples",
    "data.dataset.cache_mb", "train.seed", "train.progress", "train.log_every", "train.tensorboard",
    "train.cpu_threads", "train.save_every", "train.keep_last", "train.val_every", "train.val_captions",
    "train.val_max_new_tokens", "train.best_metric", "train.best_mode"})
GENERATION = "model.generation."


def select(suite: str, names: list[str] | None) -> list[Variant]:
    """The suite's variants, or the named ones in the suite's order.

    A name ending in ``.yaml`` / ``.yml`` is an experiment file of your own: a variant named (and labelled)
    by the file's stem, after the suite's.

    Raises:
        ValueError: an unknown suite or variant name (the message lists the valid ones), a missing file,
            or two variants with one name.
    """
    if suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r}; suites: {', '.join(SUITES)}")
    variants = SUITES[suite]
    if not names:
        return list(variants)
    known = {v.name for v in variants}
    files = [n for n in names if n.endswith((".yaml", ".yml"))]
    unknown = [n for n in names if n not in known and n not in files]
    if unknown:
        raise ValueError(f"--variants: unknown variant {unknown[0]!r} in suite {suite!r}; "
                         f"variants: {', '.join(v.name for v in variants)} (or an experiment .yaml file)")
    chosen = [v for v in variants if v.name in names]
    for f in files:
        path = Path(f)
        if not path.is_file():
            raise ValueError(f"--variants: experiment file not found: {f}")
        chosen.append(Variant(path.stem, path.stem, str(path)))
    taken = [v.name for v in chosen]
    dup = next((n for n in taken if taken.count(n) > 1), None)
    if dup is not None:
        raise ValueError(f"--variants: two variants are named {dup!r}")
    return chosen


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def effective_config(cfg: TrainConfig) -> dict[str, Any]:
    """The resolved config as flat ``{dotted key: value}``, without run-local fields, loss terms normalised.

    A loss term with zero weight is off: with ``sralign_lambda == 0``, or with both ``csc`` and ``rec`` off,
    SRAlign is absent (``csc = rec = False``, ``sralign_lambda = 0``), and the settings of an absent term
    (the L_csc denominator and logit scale, the shared alignment width) are dropped.
    """
    flat = {k: v for k, v in _flatten(to_dict(cfg)).items() if k not in RUN_LOCAL}
    loss = "model.loss."
    if flat[loss + "sralign_lambda"] == 0 or not (flat[loss + "csc"] or flat[loss + "rec"]):
        flat.update({loss + "csc": False, loss + "rec": False, loss + "sralign_lambda": 0.0})
    if not flat[loss + "csc"]:
        for k in ("csc_denominator", "logit_scale_init", "logit_scale_max"):
            flat.pop(loss + k, None)
    if not (flat[loss + "csc"] or flat[loss + "rec"]):
        flat.pop(loss + "align_dim", None)
        flat.pop("model.trainable.align", None)
    return flat


def digest(obj: Any) -> str:
    """A short stable hash of a JSON-able object."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:10]


@dataclass
class PlannedVariant:
    """A variant resolved for this suite run.

    Attributes:
        variant: the variant.
        cfg: its resolved config (``None`` when it failed to resolve).
        error: why it failed to resolve.
        train_key / eval_key: see the module docstring (empty when it failed to resolve).
        trained_by: the first variant (in suite order) with the same training key; it names the run folder.
        same_as: the other variants with the same evaluation key (one run, several rows).
    """

    variant: Variant
    cfg: TrainConfig | None = None
    error: str | None = None
    train_key: str = ""
    eval_key: str = ""
    trained_by: str = ""
    same_as: list[str] = field(default_factory=list)


def plan(variants: list[Variant], overrides: list[str], data_spec: dict[str, Any]) -> list[PlannedVariant]:
    """Resolve every variant with ``overrides`` and key it; a variant that fails to resolve keeps its error.

    Args:
        variants: the rows, in order.
        overrides: ``key=value`` applied to every variant (the suite's steps and data paths last).
        data_spec: what identifies the training data (part of the training key).
    """
    out: list[PlannedVariant] = []
    for v in variants:
        try:
            cfg = load_config(TrainConfig, v.config, overrides, section="experiments")
        except (ValueError, FileNotFoundError) as exc:
            out.append(PlannedVariant(v, error=f"{type(exc).__name__}: {exc}"))
            continue
        flat = effective_config(cfg)
        train = {k: x for k, x in flat.items() if not k.startswith(GENERATION)}
        gen = {k: x for k, x in flat.items() if k.startswith(GENERATION)}
        tkey = digest({"config": train, "data": data_spec})
        out.append(PlannedVariant(v, cfg, train_key=tkey, eval_key=digest({"train": tkey, "generation": gen})))
    ok = [p for p in out if p.cfg is not None]
    for p in ok:
        p.trained_by = next(q.variant.name for q in ok if q.train_key == p.train_key)
        p.same_as = [q.variant.name for q in ok if q.eval_key == p.eval_key and q is not p]
    return out
