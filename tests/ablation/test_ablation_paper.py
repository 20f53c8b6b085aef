"""The paper's ablation figures: each row's difference to its table's full model, as printed."""

from __future__ import annotations

import pytest

from clvnet.ablation.paper import METRICS, TABLES, paper_difference
from clvnet.ablation.suite import PAPER_SUITE


def _d(*values: float) -> dict[str, float | None]:
    return dict(zip(METRICS, values))


@pytest.mark.parametrize(("table", "row", "want"), [
    ("II", "CLV-Net (w/o Prompt)", _d(-1.8, -1.2, -2.6, -1.8, -2.3)),      # 22.7 25.0 19.2 53.5 39.6
    ("III", "CLV-Net (w/o CGFormer)", _d(-1.3, -0.6, -1.3, -2.3, -2.5)),   # 23.2 25.6 20.5 53.0 39.4
    ("III", "CLV-Net (SAM)", _d(-0.1, -0.2, -0.6, -0.5, -0.4)),            # 24.4 26.0 21.2 54.8 41.5
    ("IV", "L_rec only", _d(-0.5, -0.4, -0.5, -0.4, -0.9)),                # 24.0 25.8 21.3 54.9 41.0
    ("IV", "L_csc only", _d(-0.3, -0.6, -0.3, -0.2, -0.6)),                # 24.2 25.6 21.5 55.1 41.3
    ("IV", "neither", _d(-0.8, -0.9, -2.2, -1.5, -1.7)),                   # 23.7 25.3 19.6 53.8 40.2
    ("V", "lambda = 0", _d(-0.8, -0.9, -2.2, -1.5, -1.7)),
    ("V", "lambda = 0.5", _d(-0.2, -0.3, -0.3, -0.3, -0.5)),
    ("V", "lambda = 1", _d(0.0, 0.0, 0.0, 0.0, 0.0)),
    ("V", "lambda = 5", _d(-0.6, -0.8, -0.6, -0.7, -0.8)),
])
def test_paper_differences(table: str, row: str, want: dict[str, float]) -> None:
    assert paper_difference(table, row) == pytest.approx(want)


def test_every_table_has_its_full_row_and_the_same_full_model() -> None:
    for t in TABLES.values():
        assert t.rows[t.full] == dict(zip(METRICS, (24.5, 26.2, 21.8, 55.3, 41.9)))


def test_unknown_table_or_row_names_what_exists() -> None:
    with pytest.raises(KeyError, match="tables: II, III, IV, V"):
        paper_difference("VI", "x")
    with pytest.raises(KeyError, match=r"rows: .*CLV-Net \(SAM\)"):
        paper_difference("III", "CLV-Net (SAM3)")


def test_every_suite_row_points_at_a_paper_row() -> None:
    with_paper = [v for v in PAPER_SUITE if v.paper is not None]
    assert len(with_paper) == 10
    for v in with_paper:
        assert v.paper is not None and set(paper_difference(*v.paper)) == set(METRICS)
