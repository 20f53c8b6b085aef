"""Parameter accounting per component (``clvnet info``), built on the meta device (no weights)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from clvnet.models.build import build_model
from clvnet.models.config import CLVNetConfig

COMPONENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("vision encoder E_v", ("vision",)),
    ("projector φ_l", ("projector",)),
    ("region encoder E_d", ("region",)),
    ("LLM 𝓛 (+LoRA)", ("reasoner",)),
    ("CGFormer", ("cgformer",)),
    ("grounding encoder", ("grounding",)),
    ("mask decoder", ("mask_decoder",)),
    ("SRAlign heads", ("sralign",)),
    ("location cues", ("cues",)),
)


@dataclass
class ComponentCount:
    """Parameter counts of one component."""

    name: str
    total: int
    trainable: int


def count_parameters(model: nn.Module) -> list[ComponentCount]:
    """Per-component totals (each parameter counted once, tied weights included once)."""
    seen: set[int] = set()
    rows = []
    named = list(model.named_parameters())
    for label, prefixes in COMPONENTS:
        tot = tr = 0
        for n, p in named:
            if n.split(".")[0] in prefixes and id(p) not in seen:
                seen.add(id(p))
                tot += p.numel()
                tr += p.numel() if p.requires_grad else 0
        rows.append(ComponentCount(label, tot, tr))
    rest = [(n, p) for n, p in named if id(p) not in seen]
    if rest:
        rows.append(ComponentCount("other", sum(p.numel() for _, p in rest),
                                   sum(p.numel() for _, p in rest if p.requires_grad)))
    return rows


def _fmt(n: int) -> str:
    return f"{n / 1e9:.3f} B" if n >= 1e9 else f"{n / 1e6:.2f} M" if n >= 1e6 else f"{n / 1e3:.1f} K"


def info_table(cfg: CLVNetConfig) -> str:
    """Build ``cfg`` on the meta device and format the parameter table."""
    model = build_model(cfg, meta=True)
    rows = count_parameters(model)
    total = sum(r.total for r in rows)
    trainable = sum(r.trainable for r in rows)
    lines = [f"model preset: {cfg.name}   (LLM training: {cfg.trainable.llm}; meta device, no weights)",
             f"{'component':24s} {'total':>12s} {'trainable':>12s} {'share of total':>15s}"]
    for r in rows:
        lines.append(f"{r.name:24s} {_fmt(r.total):>12s} {_fmt(r.trainable):>12s} {100 * r.trainable / total:14.2f}%")
    lines.append(f"{'ALL':24s} {_fmt(total):>12s} {_fmt(trainable):>12s} {100 * trainable / total:14.2f}%")
    lines.append(f"total params: {total:,}   trainable params: {trainable:,}   trainable share: "
                 f"{100 * trainable / total:.2f}%")
    return "\n".join(lines)
