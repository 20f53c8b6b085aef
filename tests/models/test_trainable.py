"""LoRA targets resolved from the LLM's own module names, and the trainable policy."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import nn

from clvnet.models.trainable import linear_layer_names, resolve_lora_targets


class _InternLM2Like(nn.Module):
    """Module names of InternLM2 (fused wqkv, w1/w2/w3), which transformers 5 does not ship natively."""

    def __init__(self, layers: int = 2, family: str = "internlm2") -> None:
        super().__init__()
        self.config = SimpleNamespace(model_type=family, num_hidden_layers=layers)
        block = lambda: nn.ModuleDict({  # noqa: E731
            "attention": nn.ModuleDict({"wqkv": nn.Linear(8, 24), "wo": nn.Linear(8, 8)}),
            "feed_forward": nn.ModuleDict({"w1": nn.Linear(8, 16), "w2": nn.Linear(16, 8), "w3": nn.Linear(8, 16)})})
        self.layers = nn.ModuleList(block() for _ in range(layers))
        self.output = nn.Linear(8, 100)


def _llama() -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    return LlamaForCausalLM(LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                        num_attention_heads=2, num_key_value_heads=1))


def test_family_tables() -> None:
    assert resolve_lora_targets(_InternLM2Like(), None) == (["wqkv", "wo", "w1", "w2", "w3"], "family internlm2")
    targets, source = resolve_lora_targets(_llama(), None)
    assert source == "family llama"
    assert targets == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def test_unknown_family_falls_back_to_every_linear_layer_of_the_blocks() -> None:
    llm = _InternLM2Like(family="mystery")
    targets, source = resolve_lora_targets(llm, None)
    assert targets == ["w1", "w2", "w3", "wo", "wqkv"] and source.startswith("fallback")
    assert "output" not in linear_layer_names(llm)                      # the LM head is not in a block


def test_a_configured_target_that_matches_nothing_lists_the_linear_layers() -> None:
    with pytest.raises(ValueError, match=r"\['q_proj'\] match no module of the LLM \(internlm2\); its linear layers are: w1, w2, w3, wo, wqkv"):
        resolve_lora_targets(_InternLM2Like(), ["q_proj", "wqkv"])
    assert resolve_lora_targets(_llama(), ["q_proj", "v_proj"]) == (["q_proj", "v_proj"], "config")


def test_lora_wraps_the_resolved_internlm2_names() -> None:
    from peft import LoraConfig, get_peft_model

    llm = _InternLM2Like()
    targets, _ = resolve_lora_targets(llm, None)
    wrapped = get_peft_model(llm, LoraConfig(r=2, lora_alpha=8, target_modules=targets))   # type: ignore[arg-type]
    lora = [n for n, _ in wrapped.named_parameters() if "lora_A" in n]
    assert len(lora) == 2 * 5
    assert all(not p.requires_grad for n, p in wrapped.named_parameters() if "lora_" not in n)
    assert torch.isfinite(wrapped.base_model.model.layers[0]["attention"]["wqkv"](torch.zeros(1, 8))).all()
