"""table.md / table.html / plot.png from a hand-made results.json: the statistics and every kind of note."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clvnet.ablation.paper import METRICS
from clvnet.ablation.table import build_rows, write_tables

SPLIT = "SynthRS-test"


def _run(variant: str, seed: int, value: float | None, status: str = "ok", error: str | None = None,
         extra: float | None = None) -> dict[str, Any]:
    metrics: dict[str, Any] = {}
    if value is not None:
        metrics = {SPLIT: {m: value for m in METRICS}}
        if extra is not None:
            metrics[SPLIT]["twin confusion"] = extra
    return {"variant": variant, "seed": seed, "status": status, "error": error, "metrics": metrics,
            "extra_names": ["twin confusion"] if extra is not None else [], "steps": 5, "train_wall_s": 1.5,
            "samples_per_s": 10.0, "stage_wall_s": 2.0, "eval_wall_s": {SPLIT: 0.5} if value is not None else {}}


def _results() -> dict[str, Any]:
    variants = [
        {"name": "full", "label": "full model", "paper": None, "paper_difference": None, "trained_by": "full",
         "same_as": []},
        {"name": "worse", "label": "w/o thing", "paper": ["III", "CLV-Net (SAM)"], "trained_by": "worse",
         "paper_difference": {"CIDEr": -0.1, "METEOR": None, "AP50": -0.6, "mIoU": -0.5, "Recall": -0.4},
         "same_as": []},
        {"name": "noisy", "label": "noisy", "paper": None, "paper_difference": None, "trained_by": "full",
         "same_as": []},
        {"name": "broken", "label": "broken", "paper": None, "paper_difference": None, "trained_by": "broken",
         "same_as": []},
    ]
    runs = [_run("full", 0, 50.0, extra=0.1), _run("full", 1, 51.0, extra=0.1), _run("full", 2, 52.0, extra=0.1),
            _run("worse", 0, 40.0), _run("worse", 1, 41.0), _run("worse", 2, 42.0),
            _run("noisy", 0, 45.0), _run("noisy", 1, 60.0), _run("noisy", 2, None, status="pending"),
            _run("broken", 0, None, "failed", "training: ValueError: bad | thing"),
            _run("broken", 1, None, "failed", "training: ValueError: bad | thing"),
            _run("broken", 2, None, "failed", "other error")]
    return {"suite": "paper", "steps": 5, "seeds": [0, 1, 2], "jobs": 1, "threads": 2, "data": {"train": 16},
            "test_splits": [{"name": SPLIT, "n_scenes": 4}], "machine": {"cpu": "cpu", "cores": 2},
            "variants": variants, "runs": runs}


def test_rows_carry_the_statistics_and_the_notes() -> None:
    rows = {r.name: r for r in build_rows(_results(), SPLIT)}
    full, worse, noisy, broken = rows["full"], rows["worse"], rows["noisy"], rows["broken"]
    assert full.cells["AP50"].summary is not None and full.cells["AP50"].summary.mean == 51.0
    assert full.cells["AP50"].comparison is None and (full.finished, full.asked) == (3, 3)
    c = worse.cells["AP50"].comparison
    assert c is not None and c.diff == -10.0 and c.beyond_spread              # t = -12.2, df 4
    assert worse.beyond() == "CIDEr↓, METEOR↓, AP50↓, mIoU↓, Recall↓"
    n = noisy.cells["AP50"].comparison
    assert n is not None and n.diff == 1.5 and not n.beyond_spread and noisy.finished == 2
    assert "evaluates the checkpoints of full model" in noisy.notes and "not run yet (seed 2)" in noisy.notes
    assert broken.finished == 0 and broken.notes == ["failed (seed 0, 1): training: ValueError: bad | thing",
                                                     "failed (seed 2): other error"]
    assert "twin confusion" in full.cells and worse.cells["twin confusion"].summary is None


def test_tables_and_plot_are_written(tmp_path: Path) -> None:
    paths = write_tables(_results(), tmp_path)
    assert [p.name for p in paths] == ["table.md", "table.html", "plot.png"]
    md = (tmp_path / "table.md").read_text()
    assert "| variant | seeds | CIDEr | CIDEr Δ (t) | CIDEr paper Δ | METEOR |" in md
    assert "twin confusion | twin confusion Δ (t) |" in md                   # the extra metric's columns
    assert "| full model | 3/3 | 51.0 ± 1.0 | — | — |" in md
    assert "| w/o thing | 3/3 | 41.0 ± 1.0 | -10.0 (-12.2)* | -0.1 | 41.0 ± 1.0 | -10.0 (-12.2)* | n/a |" in md
    assert "| noisy | 2/3 | 52.5 ± 10.6 | +1.5 (+0.2) | n/a |" in md
    assert "bad \\| thing" in md                                              # a | in an error keeps the table
    assert "Welch" in md and "Table III" in md
    html = (tmp_path / "table.html").read_text()
    assert html.count("<tr") == 5 and 'class="failed"' in html and "bad | thing" in html
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
