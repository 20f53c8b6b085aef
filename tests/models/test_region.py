"""RegionEncoder: RoIAlign by grid_sample, grid and detection tokens, box embeddings."""

from __future__ import annotations

import pytest
import torch

from clvnet.models.region import RegionEncoder, roi_align


def test_roi_align_matches_cell_means_on_linear_map() -> None:
    h = w = 8
    xs = torch.arange(w, dtype=torch.float32).view(1, 1, 1, w).expand(1, 1, h, w)
    feats = torch.cat([xs, xs.transpose(-1, -2)], dim=1)                      # channel 0 = x, 1 = y
    out = roi_align(feats, torch.tensor([[[0.0, 0.0, 1.0, 1.0]]]), out=2, sampling=2)
    assert out.shape == (1, 1, 4, 2)
    # a linear map averaged over a cell equals the cell centre (pixel centres at i + 0.5 -> value i)
    assert torch.allclose(out[0, 0, :, 0], torch.tensor([1.5, 5.5, 1.5, 5.5]))
    assert torch.allclose(out[0, 0, :, 1], torch.tensor([1.5, 1.5, 5.5, 5.5]))
    sub = roi_align(feats, torch.tensor([[[0.5, 0.25, 1.0, 0.75]]]), out=1, sampling=4)
    assert torch.allclose(sub[0, 0, 0], torch.tensor([5.5, 3.5]))


def test_grid_tokens_and_box_embedding() -> None:
    torch.manual_seed(0)
    enc = RegionEncoder(16, grid=3)
    assert enc.num_tokens == 10
    crop = torch.randn(2, 16, 6, 6)
    box = torch.tensor([[0.1, 0.1, 0.5, 0.5], [0.2, 0.3, 0.9, 0.8]])
    tok = enc(crop, box)
    assert tok.shape == (2, 10, 16)
    moved = enc(crop, box + 0.05)
    assert not torch.allclose(tok, moved)                                      # coordinates are embedded


def test_detection_tokens_pad_and_limit() -> None:
    torch.manual_seed(0)
    enc = RegionEncoder(8, mode="detections", num_detections=3)
    assert enc.num_tokens == 4
    crop = torch.randn(1, 8, 4, 4)
    box = torch.tensor([[0.0, 0.0, 0.5, 0.5]])
    det = torch.tensor([[[0.0, 0.0, 0.25, 0.25], [0.25, 0.25, 0.5, 0.5]]])
    tok = enc(crop, box, det)
    assert tok.shape == (1, 4, 8)
    # the empty slot carries the learned pad token (+ its box embedding of a zero box)
    pad_only = enc.pad_token + enc.box_mlp(torch.zeros(5))
    assert torch.allclose(tok[0, 3], pad_only, atol=1e-6)
    with pytest.raises(ValueError, match="num_detections"):
        enc(crop, box, torch.zeros(1, 4, 4))
    with pytest.raises(ValueError):
        RegionEncoder(8, mode="boxes")


def test_window_pools_only_the_box_part_of_a_padded_canvas() -> None:
    torch.manual_seed(0)
    enc = RegionEncoder(2, grid=1, sampling=2)
    # canvas spans x in [0, 1] of the image, the box is its left half: features 1 there, 0 on the padding
    crop = torch.zeros(1, 2, 8, 8)
    crop[..., :4] = 1.0
    box = torch.tensor([[0.0, 0.0, 0.5, 1.0]])
    window = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    with torch.no_grad():
        emb = enc.box_mlp(torch.tensor([0.0, 0.0, 0.5, 1.0, 0.5]))
        tok = enc(crop, box, window=window)
    assert torch.allclose(tok[0, 0] - emb, torch.ones(2), atol=1e-5)            # whole-box token sees only 1s
    no_window = enc(crop, box)
    assert not torch.allclose(no_window[0, 0], tok[0, 0])
