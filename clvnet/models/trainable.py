"""Which parameters train: the per-component policy of ``cfg.trainable``, LoRA targets, special-token rows.

The paper trains the LoRA adapters, CGFormer and the mask decoder (§IV-B). Its presets compose the named
policy ``clvnet/configs/model/trainable/paper.yaml``; every part trained beyond it is a named switch of
:class:`~clvnet.models.config.TrainableConfig` (design §7 says why each one is on).

LoRA targets are resolved from the loaded LLM's own module names: a table per model family, else every linear
layer inside the decoder blocks. A configured target that matches no module is an error that lists the
model's linear layers.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from clvnet.models.config import CLVNetConfig
from clvnet.models.modeling import CLVNet
from clvnet.models.special_rows import SpecialTokenEmbedding, SpecialTokenHead

# attention and MLP projections per family, as GeoPixel's InternLM-XComposer2.5 fine-tuning adapts them
_LLAMA_LIKE = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
LORA_TARGETS: dict[str, tuple[str, ...]] = {
    "internlm2": ("wqkv", "wo", "w1", "w2", "w3"),
    **{family: _LLAMA_LIKE for family in ("llama", "qwen2", "qwen3", "mistral", "internlm3", "gemma", "gemma2",
                                          "phi3", "olmo2", "granite")},
}


def _linear_types() -> tuple[type, ...]:
    from transformers.pytorch_utils import Conv1D

    return (nn.Linear, Conv1D)


def linear_layer_names(llm: Any) -> list[str]:
    """Leaf names of the linear layers inside the LLM's decoder blocks (its ``num_hidden_layers`` ModuleList)."""
    n_layers = int(getattr(llm.config, "num_hidden_layers", -1))
    names: set[str] = set()
    for _, module in llm.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == n_layers:
            names |= {n.rsplit(".", 1)[-1] for n, m in module.named_modules() if isinstance(m, _linear_types())}
    return sorted(names)


def resolve_lora_targets(llm: Any, configured: list[str] | None) -> tuple[list[str], str]:
    """The LoRA target module names for ``llm`` and where they came from (``config``, ``family <type>``, ``fallback``).

    Raises:
        ValueError: a configured target matches no module of the LLM (the message lists its linear layers), or
            the LLM has no linear layer inside its decoder blocks.
    """
    leaves = {n.rsplit(".", 1)[-1] for n, _ in llm.named_modules()}
    linear = linear_layer_names(llm)
    if configured:
        missing = [t for t in configured if t not in leaves and not any(n.endswith(t) for n, _ in llm.named_modules())]
        if missing:
            raise ValueError(f"llm.lora.target_modules {missing} match no module of the LLM "
                             f"({getattr(llm.config, 'model_type', '?')}); its linear layers are: {', '.join(linear)}")
        return list(configured), "config"
    family = str(getattr(llm.config, "model_type", ""))
    table = [t for t in LORA_TARGETS.get(family, ()) if t in leaves]
    if table:
        return table, f"family {family}"
    if not linear:
        raise ValueError(f"cannot resolve LoRA targets for model type {family!r}: no linear layer in its decoder "
                         "blocks; set llm.lora.target_modules")
    return linear, "fallback: every linear layer of the decoder blocks"


def set_trainable(model: CLVNet, cfg: CLVNetConfig) -> None:
    """Apply ``cfg.trainable`` (per component), LoRA, and the special-token rows."""
    t = cfg.trainable
    model.requires_grad_(False)
    if t.vision:
        model.vision.requires_grad_(True)
        _freeze(model.vision, model.vision.unused_parameters())
    model.projector.requires_grad_(t.projector)
    if model.cues.feed is not None:
        model.cues.feed.requires_grad_(t.projector)
    model.region.requires_grad_(t.region)
    for mark in (model.cues.mark_llm, model.cues.mark_mask):
        if mark is not None:
            mark.requires_grad_(t.region)
    model.cgformer.requires_grad_(t.cgformer)
    model.grounding.requires_grad_(t.grounding)
    if t.mask_decoder:
        model.mask_decoder.requires_grad_(True)
        _freeze(model.mask_decoder, model.mask_decoder.unused_parameters())
    model.sralign.requires_grad_(t.align)
    if t.llm == "full":
        model.reasoner.llm.requires_grad_(True)
    elif t.llm == "lora":
        from peft import LoraConfig, get_peft_model

        lc = cfg.llm.lora
        targets, _ = resolve_lora_targets(model.reasoner.llm, lc.target_modules)
        model.reasoner.llm = get_peft_model(model.reasoner.llm, LoraConfig(
            r=lc.r, lora_alpha=lc.alpha, lora_dropout=lc.dropout, target_modules=targets))
    llm = model.reasoner.llm
    if t.llm_embeddings in ("input", "both"):
        llm.get_input_embeddings().weight.requires_grad_(True)
    out = llm.get_output_embeddings()
    if t.llm_embeddings in ("output", "both") and out is not None:
        out.weight.requires_grad_(True)
    for module in llm.modules():           # new tokens need their rows whatever else of the LLM is frozen
        if isinstance(module, (SpecialTokenEmbedding, SpecialTokenHead)):
            module.rows.requires_grad_(True)


def lora_targets(model: CLVNet) -> list[str]:
    """The LoRA target modules of a built model (empty without LoRA)."""
    peft_config = getattr(model.reasoner.llm, "peft_config", None)
    if not peft_config:
        return []
    return sorted(peft_config["default"].target_modules)


def _freeze(module: nn.Module, names: list[str]) -> None:
    params = dict(module.named_parameters())
    for n in names:
        params[n].requires_grad_(False)
