"""SynthRS hard mode: image degradations that change pixels but never the masks.

A random non-empty subset of haze, low light, cast shadows, blur, cloud occlusion and sensor noise
is applied to the rendered image. The ground truth is unchanged on purpose: an object under a
cloud or a shadow keeps its full instance mask (the annotation says where the object IS, not what
is visible), so hard mode measures robustness to acquisition conditions.
"""

from __future__ import annotations

import math

import numpy as np

from clvnet.data.synth.landcover import grid, noise_bank, smooth_noise

DEGRADATIONS = ("haze", "low light", "shadows", "blur", "clouds", "noise")


def _blur(img: np.ndarray, k: int) -> np.ndarray:
    """Separable box blur of odd width ``k`` with edge padding (cumulative sums, vectorised)."""
    r = k // 2
    for axis in (0, 1):
        pad = [(0, 0)] * img.ndim
        pad[axis] = (r + 1, r)
        c = np.cumsum(np.pad(img, pad, mode="edge"), axis=axis, dtype=np.float32)
        n = img.shape[axis]
        hi = c[k:k + n] if axis == 0 else c[:, k:k + n]
        lo = c[:n] if axis == 0 else c[:, :n]
        img = (hi - lo) / k
    return img


def _shadows(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Long soft-edged cast shadows (e.g. from tall buildings or terrain) as dark rotated bands."""
    s = img.shape[0]
    xx, yy = grid(s)
    dark = np.ones((s, s), dtype=np.float32)
    for _ in range(int(rng.integers(1, 4))):
        cx, cy = rng.uniform(0, s, 2)
        ang = float(rng.uniform(0, math.pi))
        c, sn = math.cos(ang), math.sin(ang)
        u = (xx - cx) * c + (yy - cy) * sn
        v = -(xx - cx) * sn + (yy - cy) * c
        half_l, half_w = rng.uniform(30, 90), rng.uniform(10, 30)
        inside = np.clip(np.minimum(half_l - np.abs(u), half_w - np.abs(v)) / 4.0, 0, 1)
        dark *= 1.0 - float(rng.uniform(0.35, 0.55)) * inside
    return img * dark[..., None]


def degrade(rng: np.random.Generator, img: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Apply a random non-empty subset of :data:`DEGRADATIONS`; returns ``(image, names)``.

    ``img`` is float32 ``(H, W, 3)`` in [0, 255] (square); it is not modified in place.
    """
    s = img.shape[0]
    pick = rng.random(len(DEGRADATIONS)) < 0.35
    if not pick.any():
        pick[int(rng.integers(len(DEGRADATIONS)))] = True
    names = [n for n, p in zip(DEGRADATIONS, pick) if p]
    out = img.astype(np.float32, copy=True)
    if "shadows" in names:
        out = _shadows(rng, out)
    if "haze" in names:
        t = np.clip(float(rng.uniform(0.35, 0.6)) + 0.2 * smooth_noise(rng, s, 3), 0, 0.85)[..., None]
        out = (out * (1 - t) + np.float32(rng.uniform(185, 215)) * t).astype(np.float32)
    if "clouds" in names:
        cov = smooth_noise(rng, s, 4) + 0.5 * smooth_noise(rng, s, 9)
        alpha = np.clip((cov - float(rng.uniform(0.0, 0.5))) * 2.5, 0, 0.97)[..., None]
        out = (out * (1 - alpha) + np.float32(245) * alpha).astype(np.float32)
    if "low light" in names:
        gain = float(rng.uniform(0.25, 0.5))
        out = 255.0 * (np.clip(out, 0, 255) / 255.0) ** 1.3 * gain
    if "blur" in names:
        out = _blur(out, int(rng.choice([3, 5])))
    if "noise" in names:  # per-channel Gaussian noise from crops of the fixed noise bank
        _, fine = noise_bank(s)
        sigma = np.float32(rng.uniform(6, 14))
        for ch, (oy, ox) in enumerate(rng.integers(0, s, (3, 2))):
            out[..., ch] += fine[oy:oy + s, ox:ox + s] * sigma
    return out, names
