"""Seed statistics: mean ± std and Welch's t against the full model, checked by hand."""

from __future__ import annotations

import math

import pytest

from clvnet.ablation.stats import summarize, t_critical, welch


def test_summarize() -> None:
    s = summarize([1.0, 2.0, 3.0])
    assert s is not None and (s.mean, s.std, s.n) == (2.0, 1.0, 3)
    one = summarize([4.0])
    assert one is not None and one.std is None
    assert summarize([]) is None


def test_t_critical_two_sided_5_percent() -> None:
    assert t_critical(4.0) == 2.776 and t_critical(4.9) == 2.776     # rounded down: conservative
    assert t_critical(2.0) == 4.303 and t_critical(0.3) == 12.706 and t_critical(500) == 1.96


def test_welch_by_hand() -> None:
    low, high = summarize([1.0, 2.0, 3.0]), summarize([4.0, 5.0, 6.0])
    assert low is not None and high is not None
    c = welch(low, high)
    # se = sqrt(1/3 + 1/3); df = (2/3)^2 / ((1/3)^2/2 * 2) = 4
    assert c.diff == -3.0 and c.t == pytest.approx(-3.0 / math.sqrt(2 / 3)) and c.df == pytest.approx(4.0)
    assert c.beyond_spread                                            # |t| = 3.67 > 2.776
    near = summarize([2.0, 3.0, 4.0])
    assert near is not None
    c2 = welch(low, near)
    assert c2.t == pytest.approx(-1.0 / math.sqrt(2 / 3)) and not c2.beyond_spread


def test_welch_edge_cases() -> None:
    one, three = summarize([1.0]), summarize([1.0, 2.0, 3.0])
    same, other = summarize([2.0, 2.0]), summarize([3.0, 3.0])
    assert one is not None and three is not None and same is not None and other is not None
    assert welch(one, three).t is None and not welch(one, three).beyond_spread   # one seed: no spread
    assert welch(other, same).t == math.inf and welch(other, same).beyond_spread
    assert welch(same, same).t == 0.0 and not welch(same, same).beyond_spread
