"""Full-resolution masks from low-resolution logits: bilinear equivalence and RLE equality with pycocotools."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clvnet.data import rle
from clvnet.inference import masks as M


def _reference(logits: np.ndarray, h: int, w: int) -> np.ndarray:
    t = torch.from_numpy(logits)[None, None]
    return torch.nn.functional.interpolate(t, size=(h, w), mode="bilinear", align_corners=False)[0, 0].numpy()


@pytest.mark.parametrize(("h", "w", "m", "n"), [(37, 53, 8, 8), (64, 64, 16, 16), (100, 30, 7, 5), (9, 9, 16, 16)])
def test_upsample_window_matches_torch(h: int, w: int, m: int, n: int) -> None:
    logits = np.random.default_rng(h).normal(size=(m, n)).astype(np.float32)
    ref = _reference(logits, h, w)
    np.testing.assert_allclose(M.upsample_window(logits, h, w, (0, 0, w, h)), ref, atol=1e-5)
    np.testing.assert_allclose(M.upsample_window(logits, h, w, (3, 2, w - 1, h - 4)), ref[2:h - 4, 3:w - 1],
                               atol=1e-5)


@pytest.mark.parametrize("strip_cols", [1, 3, 1000])
def test_logits_to_rle_equals_pycocotools(strip_cols: int) -> None:
    rng = np.random.default_rng(1)
    h, w = 57, 83
    logits = rng.normal(size=(12, 12)).astype(np.float32) - 0.5
    ref = (_reference(logits, h, w) > 0).astype(np.uint8)
    got, area, win = M.logits_to_rle(logits, h, w, strip_bytes=4 * h * strip_cols)
    assert got == rle.encode(ref)
    assert area == int(ref.sum())
    assert win == rle.bbox(ref)


def test_local_blob_and_validity_callback() -> None:
    h, w = 300, 200
    logits = np.full((16, 16), -5.0, dtype=np.float32)
    logits[5:7, 9:11] = 5.0  # a blob far from the image borders
    ref = _reference(logits, h, w) > 0
    assert M.positive_window(logits, h, w) is not None
    x0, y0, x1, y1 = M.positive_window(logits, h, w)  # type: ignore[misc]
    assert ref[:y0].sum() == 0 and ref[y1:].sum() == 0 and ref[:, :x0].sum() == 0 and ref[:, x1:].sum() == 0
    nodata = np.ones((h, w), dtype=bool)
    nodata[:, :120] = False

    def valid(win: tuple[int, int, int, int]) -> np.ndarray:
        a, b, c, d = win
        return nodata[b:d, a:c]

    got, area, _ = M.logits_to_rle(logits, h, w, valid=valid, strip_bytes=4 * h * 7)
    expect = (ref & nodata).astype(np.uint8)
    assert got == rle.encode(expect) and area == int(expect.sum()) > 0


def test_empty_and_full_masks() -> None:
    h, w = 20, 30
    empty, a0, w0 = M.logits_to_rle(np.full((4, 4), -1.0, dtype=np.float32), h, w)
    assert empty == rle.encode(np.zeros((h, w), np.uint8)) and a0 == 0 and w0 is None
    full, a1, w1 = M.logits_to_rle(np.ones((4, 4), dtype=np.float32), h, w, strip_bytes=4 * h * 4)
    assert full == rle.encode(np.ones((h, w), np.uint8)) and a1 == h * w and w1 == (0, 0, w, h)


def test_runs_merge_across_strips_when_window_spans_full_height() -> None:
    mask = np.zeros((10, 6), dtype=bool)
    mask[6:, 1] = True
    mask[:4, 2] = True  # continues the previous column's run in column-major order
    s1, e1 = M.window_runs(mask[:, :2], 0, 0, 10)
    s2, e2 = M.window_runs(mask[:, 2:], 2, 0, 10)
    got = M.runs_to_rle(np.concatenate([s1, s2]), np.concatenate([e1, e2]), 10, 6)
    assert got == rle.encode(mask.astype(np.uint8))


def test_window_mask_decimates_large_windows() -> None:
    logits = np.random.default_rng(3).normal(size=(8, 8)).astype(np.float32)
    ref = _reference(logits, 400, 400) > 0
    exact, k1 = M.window_mask(logits, 400, 400, (0, 0, 400, 400), max_pixels=400 * 400)
    assert k1 == 1 and (exact == ref).all()
    small, k = M.window_mask(logits, 400, 400, (0, 0, 400, 400), max_pixels=100 * 100)
    assert k == 4 and small.shape == (100, 100)
    assert (small == ref[2::4, 2::4]).mean() > 0.99
