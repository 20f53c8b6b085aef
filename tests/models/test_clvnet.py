"""End-to-end contracts of CLVNet: forward losses, backward, save/load, generate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from clvnet.models.clvnet import LOSS_KEYS, CLVNet


def test_forward_losses_and_shapes(tiny_model: CLVNet, batch: dict[str, Any]) -> None:
    out = tiny_model(tiny_model.processor(batch))
    assert set(out.losses) == set(LOSS_KEYS)
    assert out.mask_logits.shape == batch["masks"].shape
    assert all(torch.isfinite(v) for v in out.losses.values())
    assert float(out.losses["rec"]) >= 0 and float(out.losses["csc"]) > 0
    lc = tiny_model.cfg.loss
    expect = (out.losses["caption"] + lc.w_bce * out.losses["mask_bce"] + lc.w_dice * out.losses["mask_dice"]
              + lc.sralign_lambda * (out.losses["csc"] + out.losses["rec"]))
    assert torch.allclose(out.losses["total"], expect, atol=1e-5)


def test_backward_reaches_exactly_trainable(tiny_model: CLVNet, batch: dict[str, Any]) -> None:
    out = tiny_model(tiny_model.processor(batch))
    out.loss.backward()
    trainable = {n for n, p in tiny_model.named_parameters() if p.requires_grad}
    with_grad = {n for n, p in tiny_model.named_parameters() if p.grad is not None}
    assert trainable == with_grad


def test_save_load_roundtrip(tiny_model: CLVNet, batch: dict[str, Any], tmp_path: Path) -> None:
    tiny_model.eval()
    tiny_model.save_pretrained(tmp_path / "ckpt")
    assert {p.name for p in (tmp_path / "ckpt").iterdir()} >= {"config.yaml", "model.safetensors", "tokenizer"}
    loaded = CLVNet.from_pretrained(tmp_path / "ckpt").eval()
    inputs = tiny_model.processor(batch)
    with torch.no_grad():
        a, b = tiny_model(inputs), loaded(inputs)
    assert torch.equal(a.loss, b.loss)
    assert torch.equal(a.mask_logits, b.mask_logits)


def test_seg_mask_mismatch_names_record(tiny_model: CLVNet, batch: dict[str, Any]) -> None:
    inputs = tiny_model.processor(batch)
    inputs["mask_valid"] = inputs["mask_valid"].clone()
    inputs["mask_valid"][1, 0] = False                      # one mask fewer than [SEG] tokens
    with pytest.raises(ValueError, match=r"record rec1: 1 \[SEG\] tokens .* but 0 masks"):
        tiny_model(inputs)
    batch["mask_valid"][1, 0] = False
    with pytest.raises(ValueError, match="rec1"):
        tiny_model.processor(batch)


def test_generate_cache_matches_no_cache(tiny_model: CLVNet, batch: dict[str, Any]) -> None:
    tiny_model.eval()
    chunks: list[tuple[int, str]] = []
    a = tiny_model.generate(batch["image"], batch["region"], batch["box"], max_new_tokens=12,
                            streamer=lambda i, t: chunks.append((i, t)))
    b = tiny_model.generate(batch["image"], batch["region"], batch["box"], max_new_tokens=12, use_cache=False)
    assert len(a) == 2
    assert [o.token_ids for o in a] == [o.token_ids for o in b]
    assert "".join(t for i, t in chunks if i == 0) == a[0].tagged
    for o in a:
        assert o.mask_logits.shape[1:] == (32, 32) and o.mask_logits.shape[0] == len(o.phrases)
