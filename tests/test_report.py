"""The report writer: table, loss plot, HTML."""

from __future__ import annotations

from pathlib import Path

from clvnet.engine.logging import CSVLog
from clvnet.report import Report, Scene, markdown_table, plot_losses, write_report


def test_table_and_files(tmp_path: Path) -> None:
    log = CSVLog(tmp_path / "train_log.csv")
    for s in (1, 2, 3):
        log.write({"step": s, "total": 3.0 / s, "caption": 2.0 / s, "mask_bce": 0.5, "mask_dice": 0.4,
                   "csc": 0.1, "rec": 0.01})
    vlog = CSVLog(tmp_path / "val_log.csv")
    vlog.write({"step": 3, "loss": 1.2, "miou": 40.0, "ap50": 30.0})
    png = plot_losses(tmp_path / "train_log.csv", tmp_path / "val_log.csv", tmp_path / "loss_curves.png")
    assert png.stat().st_size > 1000
    metrics = {"tiny": {"mIoU": 61.23, "AP50": 44.0}, "baseline": {"mIoU": 12.0, "AP50": None}}
    table = markdown_table(metrics, ["mIoU", "AP50"])
    assert "| tiny | 61.2 | 44.0 |" in table and "| baseline | 12.0 | n/a |" in table
    rep = Report("Quickstart", metrics, ["mIoU", "AP50"], "runs/x/checkpoint",
                 scenes=[Scene("s1", "scenes/s1.png", '<span class="clv-phrase">a car</span>', "a car")],
                 facts={"steps": 3})
    md, html = write_report(tmp_path, rep)
    text = md.read_text()
    assert "| tiny | 61.2 | 44.0 |" in text and "runs/x/checkpoint" in text and "loss_curves.png" in text
    h = html.read_text()
    assert "<table>" in h and "scenes/s1.png" in h and "clv-phrase" in h
