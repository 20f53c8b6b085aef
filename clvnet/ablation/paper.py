"""The paper's ablation figures (Tables II-V of ``clvnet-paper.md``, GeoPixelD), as printed.

Each table lists the full model's row and its ablations; :func:`paper_difference` gives an ablation's
difference to the full model of the same table, the figure ``clvnet ablate`` shows beside its own.
A metric a table does not give is ``None`` (shown as "n/a").
"""

from __future__ import annotations

from dataclasses import dataclass

METRICS: tuple[str, ...] = ("CIDEr", "METEOR", "AP50", "mIoU", "Recall")


@dataclass(frozen=True)
class PaperTable:
    """One ablation table: its rows' metrics as printed, and which row is the full model."""

    title: str
    full: str
    rows: dict[str, dict[str, float | None]]


def _row(cider: float, meteor: float, ap50: float, miou: float, recall: float) -> dict[str, float | None]:
    return dict(zip(METRICS, (cider, meteor, ap50, miou, recall)))


TABLES: dict[str, PaperTable] = {
    "II": PaperTable(
        "Table II: removing the prompt box, and a smaller LLM", "CLV-Net (7B)",
        {"CLV-Net (7B)": _row(24.5, 26.2, 21.8, 55.3, 41.9),
         "CLV-Net (w/o Prompt)": _row(22.7, 25.0, 19.2, 53.5, 39.6),
         "CLV-Net (1.8B)": _row(23.8, 25.6, 21.4, 55.1, 41.3)}),
    "III": PaperTable(
        "Table III: CMDecoder components", "CLV-Net (SAM2)",
        {"CLV-Net (SAM2)": _row(24.5, 26.2, 21.8, 55.3, 41.9),
         "CLV-Net (w/o CGFormer)": _row(23.2, 25.6, 20.5, 53.0, 39.4),
         "CLV-Net (SAM)": _row(24.4, 26.0, 21.2, 54.8, 41.5)}),
    "IV": PaperTable(
        "Table IV: removing L_csc, L_rec or both", "L_csc + L_rec",
        {"neither": _row(23.7, 25.3, 19.6, 53.8, 40.2),
         "L_csc only": _row(24.2, 25.6, 21.5, 55.1, 41.3),
         "L_rec only": _row(24.0, 25.8, 21.3, 54.9, 41.0),
         "L_csc + L_rec": _row(24.5, 26.2, 21.8, 55.3, 41.9)}),
    "V": PaperTable(
        "Table V: the SRAlign weight lambda", "lambda = 1",
        {"lambda = 0": _row(23.7, 25.3, 19.6, 53.8, 40.2),
         "lambda = 0.5": _row(24.3, 25.9, 21.5, 55.0, 41.4),
         "lambda = 1": _row(24.5, 26.2, 21.8, 55.3, 41.9),
         "lambda = 5": _row(23.9, 25.4, 21.2, 54.6, 41.1)}),
}


def paper_difference(table: str, row: str) -> dict[str, float | None]:
    """``row`` minus the full model's row of ``table``, per metric (``None`` where either lacks it).

    Raises:
        KeyError: no such table or row (the message lists what exists).
    """
    if table not in TABLES:
        raise KeyError(f"no paper table {table!r}; tables: {', '.join(TABLES)}")
    t = TABLES[table]
    if row not in t.rows:
        raise KeyError(f"table {table} has no row {row!r}; rows: {', '.join(t.rows)}")
    ref, got = t.rows[t.full], t.rows[row]
    out: dict[str, float | None] = {}
    for m in METRICS:
        a, b = got.get(m), ref.get(m)
        out[m] = None if a is None or b is None else round(a - b, 2)
    return out
