"""CSV logs: fixed columns, trimmed on resume."""

from __future__ import annotations

from pathlib import Path

import pytest

from clvnet.engine.logging import CSVLog, RunLogger, read_csv


def test_csv_columns_fixed_and_resume_trims(tmp_path: Path) -> None:
    log = CSVLog(tmp_path / "a.csv")
    for step in (10, 20, 30):
        log.write({"step": step, "loss": 1.0 / step})
    with pytest.raises(KeyError, match="extra"):
        log.write({"step": 40, "extra": 1})
    resumed = CSVLog(tmp_path / "a.csv", resume_step=20)
    resumed.write({"step": 30, "loss": 0.5})
    rows = read_csv(tmp_path / "a.csv")
    assert [r["step"] for r in rows] == [10, 20, 30] and rows[-1]["loss"] == 0.5
    CSVLog(tmp_path / "a.csv")  # a fresh run starts a fresh file
    assert not (tmp_path / "a.csv").exists()


def test_run_logger_samples(tmp_path: Path) -> None:
    rl = RunLogger(tmp_path, tensorboard=False)
    rl.log_train({"step": 1, "total": 2.0})
    rl.log_samples(1, [("<p> a car </p> [SEG]", "a boat")])
    rl.close()
    assert "pred: a boat" in (tmp_path / "samples.txt").read_text()
    assert read_csv(tmp_path / "train_log.csv") == [{"step": 1.0, "total": 2.0}]
