"""Helpers of the ablation tests: overrides that shrink the quickstart model, and an extra metric."""

from __future__ import annotations

from typing import Any

# The quickstart (full-model) config shrunk to 64 px scenes and one-layer transformers: a step takes well
# under a second on one core.
SMALL = ["model.vision.config.image_size=64", "model.vision.config.num_hidden_layers=1",
         "model.llm.config.hidden_size=32", "model.llm.config.intermediate_size=64",
         "model.llm.config.num_hidden_layers=1", "model.llm.tokenizer_vocab_size=300",
         "model.grounding.image_size=64", "model.mask_decoder.mask_size=32", "model.generation.max_new_tokens=12",
         "model.region.crop_size=32", "data.num_workers=0", "train.batch_size=4", "train.log_every=1"]


def phrases_per_scene(gts: list[Any], preds: list[Any]) -> dict[str, float]:
    """An extra metric for the runner's hook: predicted phrases per scene, and GT phrases per scene."""
    n = max(len(gts), 1)
    return {"pred phrases/scene": sum(len(p.phrases) for p in preds) / n,
            "gt phrases/scene": sum(len(g.phrases) for g in gts) / n}
