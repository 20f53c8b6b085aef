"""Text encoder: batched, cached mean pooling equal to the reference's per-phrase formula; offline default."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from clvnet.eval.text_encoder import TextEncoder, get_text_encoder

PHRASES = ["two white cars", "a boat", "several large buildings near the road", "a", "cars"]


def test_batched_mean_pool_matches_reference_formula(tiny_encoder_dir: Path) -> None:
    import torch
    from transformers import AutoModel, AutoTokenizer

    enc = TextEncoder(tiny_encoder_dir, batch_size=3)
    enc.embed(PHRASES)
    assert enc.cache_size == len(PHRASES)
    tok = AutoTokenizer.from_pretrained(str(tiny_encoder_dir), local_files_only=True)
    model = AutoModel.from_pretrained(str(tiny_encoder_dir), local_files_only=True).eval()
    for p in PHRASES:
        inputs = tok(p, return_tensors="pt", max_length=512, truncation=True)
        assert inputs["input_ids"][0, 0] == tok.cls_token_id and inputs["input_ids"][0, -1] == tok.sep_token_id
        with torch.no_grad():
            ref = torch.mean(model(**inputs).last_hidden_state[0], dim=0).numpy()  # CLS and SEP included
        np.testing.assert_allclose(enc.vector(p), ref, rtol=1e-4, atol=1e-5)
    assert enc.cache_size == len(PHRASES)  # vector() used the cache
    assert enc.similarity("a boat", "a boat") == pytest.approx(1.0, abs=1e-6)
    u, v = enc.vector("a boat"), enc.vector("cars")
    assert enc.similarity("a boat", "cars") == pytest.approx(float(u @ v / np.linalg.norm(u) / np.linalg.norm(v)))


def test_shared_encoder_loaded_once_per_path(tiny_encoder_dir: Path) -> None:
    a = get_text_encoder(tiny_encoder_dir)
    assert get_text_encoder(str(tiny_encoder_dir)) is a
    assert get_text_encoder(a) is a


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="text encoder folder not found"):
        TextEncoder(tmp_path / "nope")


def test_default_minilm_loads_offline() -> None:
    enc = get_text_encoder(None)
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    assert "all-MiniLM-L6-v2" in enc.name
    assert enc.similarity("two white cars", "two white cars") == pytest.approx(1.0, abs=1e-5)
    assert enc.similarity("two white cars", "two white vehicles") > enc.similarity("two white cars", "a river")
