"""Fixtures for the inference tests: GeoTIFF writer, the real reference image, a tiny checkpoint."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO.parent / "shared" / "reference"


@pytest.fixture(scope="session")
def example_png() -> Path:
    """The real 800x800 aerial scene from GeoPixel (read-only reference data)."""
    path = REFERENCE / "geopixeld" / "example1.png"
    if not path.is_file():
        pytest.skip(f"reference image not found: {path}")
    return path


def _write_geotiff(path: Path, data: np.ndarray, *, crs: str | None = "EPSG:32633",
                   origin: tuple[float, float] = (500000.0, 4650000.0), pixel: float = 0.5,
                   nodata: float | None = None, colorinterp: list[Any] | None = None,
                   tiled: bool = False) -> Path:
    import rasterio
    from affine import Affine

    count, h, w = data.shape
    profile: dict[str, Any] = {"driver": "GTiff", "height": h, "width": w, "count": count, "dtype": data.dtype.name}
    if crs is not None:
        profile.update(crs=crs, transform=Affine(pixel, 0.0, origin[0], 0.0, -pixel, origin[1]))
    if nodata is not None:
        profile["nodata"] = nodata
    if tiled:
        profile.update(tiled=True, blockxsize=64, blockysize=64, compress="deflate")
    import warnings

    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data)
            if colorinterp is not None:
                dst.colorinterp = colorinterp
    return path


@pytest.fixture
def write_geotiff() -> Callable[..., Path]:
    """``write_geotiff(path, data (C, H, W), crs=..., pixel=..., nodata=..., colorinterp=...)``."""
    return _write_geotiff


SCRIPT = ["A", " scene", "!", " The", " ", "<p>", " car", "</p>", "[SEG]", " parked", "."]
CAPTIONS = ["A scene! The <p> car </p> [SEG] parked. A road with <p> trees </p> [SEG] near water."] * 4


def script_llm(model: Any, script: list[str]) -> None:
    """Make the tiny LLM emit ``script`` (then EOS) whatever the input: a deterministic test model.

    Every transformer block's output projections are zeroed, so the last hidden state is the current
    token's embedding. Embeddings are one-hot codes and the LM head maps the code of script token k to
    token k + 1 (every other token maps to the first script token), so greedy decoding follows the script.
    The vision, region, CGFormer and mask-decoder weights stay random.
    """
    import torch

    tok = model.tokenizer
    ids = []
    for piece in script:
        enc = tok.convert_tokens_to_ids(piece) if piece in tok.get_vocab() else None
        if enc is None or enc == tok.unk_token_id:
            toks = tok.encode(piece, add_special_tokens=False)
            if len(toks) != 1:
                raise ValueError(f"script piece {piece!r} is not one token: {toks}")
            enc = toks[0]
        ids.append(int(enc))
    if len(set(ids)) != len(ids):
        raise ValueError("script tokens must be distinct")
    llm = model.reasoner.llm
    with torch.no_grad():
        for name, p in llm.named_parameters():
            if name.endswith(("o_proj.weight", "down_proj.weight")):
                p.zero_()
        emb = llm.get_input_embeddings().weight
        head = llm.get_output_embeddings().weight
        d = emb.shape[1]
        if len(ids) + 1 > d:
            raise ValueError("script longer than the hidden size")
        emb.zero_()
        emb[:, 0] = 1.0  # every token not in the script: code 0
        head.zero_()
        head[ids[0], 0] = 10.0
        eos = tok.eos_token_id
        for k, t in enumerate(ids):
            emb[t].zero_()
            emb[t, k + 1] = 1.0
            nxt = ids[k + 1] if k + 1 < len(ids) else eos
            head[nxt, k + 1] = 10.0


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny CLVNet (random weights, scripted LLM) saved with ``save_pretrained``; loaded back by tests."""
    import torch

    from clvnet.models.builder import build_model
    from clvnet.models.config import CLVNetConfig

    torch.manual_seed(0)
    model = build_model(CLVNetConfig(), captions=CAPTIONS)
    script_llm(model, SCRIPT)
    out = tmp_path_factory.mktemp("ckpt") / "tiny"
    model.save_pretrained(out)
    return out
