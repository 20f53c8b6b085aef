"""Seed statistics of the ablation table: mean ± std, and whether a difference exceeds the seed spread.

The test is Welch's two-sample t on the per-seed values of the variant and of the full model:
``t = (mean_v - mean_f) / sqrt(s_v^2 / n_v + s_f^2 / n_f)`` with the Welch-Satterthwaite degrees of
freedom, compared with the two-sided 5% critical value of Student's t at those degrees of freedom
rounded down (conservative). With 3 seeds a side, the critical value lies between 2.78 (df 4) and 4.30 (df 2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# Two-sided 5% critical values of Student's t, df = 1..30 (then 1.96 as the normal limit).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)


def t_critical(df: float) -> float:
    """Two-sided 5% critical value of Student's t at ``floor(df)`` degrees of freedom (df >= 1)."""
    k = max(math.floor(df), 1)
    return _T975[k - 1] if k <= len(_T975) else 1.96


@dataclass(frozen=True)
class Summary:
    """Mean and sample standard deviation (``None`` with fewer than 2 values) of ``n`` values."""

    mean: float
    std: float | None
    n: int


def summarize(values: Sequence[float]) -> Summary | None:
    """Mean ± sample std of ``values``; ``None`` when there are none."""
    if not values:
        return None
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((x - mean) ** 2 for x in values) / (n - 1)) if n > 1 else None
    return Summary(mean, std, n)


@dataclass(frozen=True)
class Comparison:
    """A variant against the full model: the difference of means, Welch's t and its verdict.

    Attributes:
        diff: variant mean minus full-model mean.
        t: Welch's t (``None`` when either side has fewer than 2 seeds; infinite when both spreads are 0).
        df: Welch-Satterthwaite degrees of freedom.
        beyond_spread: ``|t|`` exceeds the two-sided 5% critical value.
    """

    diff: float
    t: float | None
    df: float | None
    beyond_spread: bool


def welch(variant: Summary, full: Summary) -> Comparison:
    """Compare ``variant`` with ``full`` (see the module docstring)."""
    diff = variant.mean - full.mean
    if variant.std is None or full.std is None:
        return Comparison(diff, None, None, False)
    a, b = variant.std ** 2 / variant.n, full.std ** 2 / full.n
    se = math.sqrt(a + b)
    if se == 0.0:
        if diff == 0.0:
            return Comparison(0.0, 0.0, None, False)
        return Comparison(diff, math.copysign(math.inf, diff), None, True)
    t = diff / se
    df = (a + b) ** 2 / ((a ** 2 / (variant.n - 1) if a else 0.0) + (b ** 2 / (full.n - 1) if b else 0.0))
    return Comparison(diff, t, df, abs(t) > t_critical(df))
