"""E_v (CLIP) and φ_l: the selected layer's grid, unused parameters, pooling and normalisation."""

from __future__ import annotations

import pytest
import torch

from clvnet.models.vision import Projector, VisionEncoder, grid_to_tokens, normalize


def _clip(layers: int = 3) -> VisionEncoder:
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(0)
    conf = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=layers, num_attention_heads=2,
                            image_size=32, patch_size=8)
    return VisionEncoder(CLIPVisionModel(conf), select_layer=-2)


def test_grid_of_the_selected_layer_and_other_sizes() -> None:
    enc = _clip()
    images = torch.rand(2, 3, 32, 32)
    grid = enc(images)
    assert grid.shape == (2, 16, 4, 4)
    pixels = normalize(images, enc.mean, enc.std, 32)
    want = enc.clip(pixel_values=pixels, output_hidden_states=True).hidden_states[-2][:, 1:]
    assert torch.allclose(grid.flatten(2).transpose(1, 2), want)
    assert enc(torch.rand(1, 3, 48, 48), size=48).shape == (1, 16, 6, 6)   # interpolated positions


def test_unused_parameters_are_the_layers_after_the_selected_one() -> None:
    enc = _clip(3)
    unused = enc.unused_parameters()
    assert unused and all(".layers.2." in n or "post_layernorm" in n for n in unused)
    images = torch.rand(1, 3, 32, 32)
    enc(images).sum().backward()
    grads = {n for n, p in enc.named_parameters() if p.grad is not None and float(p.grad.abs().sum()) > 0}
    assert not grads & set(unused) and ".layers.1." in " ".join(grads)


def test_pooling_projector_and_bad_input() -> None:
    grid = torch.arange(16.0).view(1, 1, 4, 4)
    assert grid_to_tokens(grid, 2)[0, :, 0].tolist() == [2.5, 4.5, 10.5, 12.5]
    assert grid_to_tokens(grid)[0, :, 0].tolist() == list(range(16))
    assert Projector(4, 6, 5)(torch.zeros(2, 3, 4)).shape == (2, 3, 6)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        normalize(torch.rand(3, 8, 8), (0.5,) * 3, (0.5,) * 3, 8)
