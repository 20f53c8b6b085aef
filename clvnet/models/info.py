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


PAPER_TRAINABLE_SHARE = 7.28      # % of all parameters, paper §IV-F: "the LoRA parameters and the CMDecoder"


def _llm_parts(model: nn.Module) -> tuple[int, int]:
    """(LoRA parameters, special-token row parameters) that train."""
    lora = rows = 0
    for n, p in model.named_parameters():
        if p.requires_grad and ".lora_" in n:
            lora += p.numel()
        elif p.requires_grad and n.startswith("reasoner.") and n.endswith(".rows"):
            rows += p.numel()
    return lora, rows


def info_table(cfg: CLVNetConfig) -> str:
    """Build ``cfg`` on the meta device and format the parameter table, LoRA targets and trainable shares."""
    from clvnet.models.trainable import lora_targets, resolve_lora_targets

    model = build_model(cfg, meta=True)
    rows = count_parameters(model)
    total = sum(r.total for r in rows)
    trainable = sum(r.trainable for r in rows)

    def pct(n: int) -> str:
        return f"{100 * n / total:.2f}%"

    lines = [f"model preset: {cfg.name}   (LLM training: {cfg.trainable.llm}; meta device, no weights)",
             f"{'component':24s} {'total':>12s} {'trainable':>12s} {'share of total':>15s}"]
    for r in rows:
        if r.total:
            lines.append(f"{r.name:24s} {_fmt(r.total):>12s} {_fmt(r.trainable):>12s} {pct(r.trainable):>15s}")
    lines.append(f"{'ALL':24s} {_fmt(total):>12s} {_fmt(trainable):>12s} {pct(trainable):>15s}")
    lines.append(f"total params: {total:,}   trainable params: {trainable:,}   trainable share: {pct(trainable)}")
    lora, special = _llm_parts(model)
    if cfg.trainable.llm == "lora":
        llm = model.reasoner.llm.get_base_model()
        _, source = resolve_lora_targets(llm, cfg.llm.lora.target_modules)
        lines.append(f"LoRA targets ({source}; r={cfg.llm.lora.r}, alpha={cfg.llm.lora.alpha}): "
                     f"{', '.join(lora_targets(model))}")
        if cfg.llm.trust_remote_code and cfg.llm.pretrained_path is None:
            lines.append("  (counted on a native stand-in of the same size; a remote-code LLM folder resolves "
                         "its own module names, e.g. InternLM2: wqkv, wo, w1, w2, w3)")
    by_name = {r.name: r.trainable for r in rows}
    paper_set = lora + by_name.get("CGFormer", 0) + by_name.get("mask decoder", 0)
    lines.append(f"paper's set (LoRA + CGFormer + mask decoder): {_fmt(paper_set)} = {pct(paper_set)}   "
                 f"paper: {PAPER_TRAINABLE_SHARE:.2f}%")
    extras = [(name, by_name.get(name, 0)) for name in ("projector φ_l", "region encoder E_d", "SRAlign heads",
                                                         "location cues", "vision encoder E_v", "grounding encoder")]
    extras.append(("special-token rows", special))
    llm_rest = by_name.get("LLM 𝓛 (+LoRA)", 0) - lora - special
    extras.append(("LLM weights beyond LoRA", llm_rest))
    listed = ", ".join(f"{name} {_fmt(n)} ({pct(n)})" for name, n in extras if n)
    lines.append(f"beyond it: {listed or 'nothing'}")
    return "\n".join(lines)
