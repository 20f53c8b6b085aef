"""Helpers for model tests: a hand-drawn GCG batch (rectangles) and a micro config."""

from __future__ import annotations

from typing import Any

import torch

from clvnet.models.config import CLVNetConfig

TARGETS = [
    "A town. The <p> two red cars </p> [SEG] are parked next to <p> a house </p> [SEG].",
    "A field with <p> a white boat </p> [SEG] on the water.",
]
PHRASES = [["two red cars", "a house"], ["a white boat"]]


def make_batch(batch: int = 2, size: int = 64, region: int = 32, mask: int = 32, seed: int = 0) -> dict[str, Any]:
    """A collate_gcg-style batch: dark images with bright rectangles, one mask per phrase."""
    g = torch.Generator().manual_seed(seed)
    img = torch.rand(batch, 3, size, size, generator=g) * 0.2
    n_max = max(len(PHRASES[b % 2]) for b in range(batch))
    masks = torch.zeros(batch, n_max, mask, mask)
    valid = torch.zeros(batch, n_max, dtype=torch.bool)
    scale = size // mask
    for b in range(batch):
        for j in range(len(PHRASES[b % 2])):
            y0, x0 = 4 + 12 * j + b, 6 + 10 * j
            img[b, j % 3, y0 * scale:(y0 + 8) * scale, x0 * scale:(x0 + 8) * scale] = 1.0
            masks[b, j, y0:y0 + 8, x0:x0 + 8] = 1.0
            valid[b, j] = True
    return {
        "image": img, "region": img[:, :, : size // 2, : size // 2].clone(),
        "box": torch.tensor([[0.0, 0.0, 0.5, 0.5]] * batch),
        "masks": masks, "mask_valid": valid,
        "target": [TARGETS[b % 2] for b in range(batch)], "caption": [TARGETS[b % 2] for b in range(batch)],
        "phrase_texts": [PHRASES[b % 2] for b in range(batch)], "id": [f"rec{b}" for b in range(batch)],
    }


def micro_config(**over: Any) -> CLVNetConfig:
    """The tiny preset shrunk further for unit tests (64 px images, 32 px regions and masks)."""
    from clvnet.config import from_dict, to_dict

    d = to_dict(CLVNetConfig())
    d["vision"]["config"].update(image_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                 num_attention_heads=2, patch_size=8)
    d["vision"]["llm_pool"] = 2
    d["llm"]["config"].update(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                              num_key_value_heads=2)
    d["llm"]["tokenizer_vocab_size"] = 400
    d["grounding"]["image_size"] = 64
    d["grounding"]["stem_channels"] = 8
    d["mask_decoder"]["mask_size"] = 32
    d["region"]["crop_size"] = 32
    d["loss"]["align_dim"] = 16
    for k, v in over.items():
        node = d
        parts = k.split(".")
        for p in parts[:-1]:
            node = node[p]
        node[parts[-1]] = v
    return from_dict(CLVNetConfig, d)
