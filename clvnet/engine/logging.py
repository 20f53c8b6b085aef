"""Training logs: CSV always, TensorBoard when it is installed, decoded samples as text.

Only rank 0 creates a :class:`RunLogger`. On resume the CSV files are trimmed to the resumed
step, so a run interrupted by ``kill -9`` and resumed leaves one consistent log.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("clvnet.train")


class CSVLog:
    """An append-only CSV whose columns are fixed by the first row written.

    Args:
        path: the CSV file.
        resume_step: if given and the file exists, rows with ``step > resume_step`` are dropped.
    """

    def __init__(self, path: Path, resume_step: int | None = None) -> None:
        self.path = path
        self.fields: list[str] | None = None
        if self.path.is_file():
            if resume_step is None:
                self.path.unlink()
            else:
                with self.path.open(newline="") as f:
                    reader = csv.DictReader(f)
                    self.fields = list(reader.fieldnames or [])
                    rows = [r for r in reader if int(float(r.get("step") or 0)) <= resume_step]
                with self.path.open("w", newline="") as f:
                    w = csv.DictWriter(f, fieldnames=self.fields)
                    w.writeheader()
                    w.writerows(rows)

    def write(self, row: dict[str, Any]) -> None:
        """Append ``row``; a key not in the header raises ``KeyError`` naming it."""
        new = self.fields is None
        if self.fields is None:
            self.fields = list(row)
        extra = [k for k in row if k not in self.fields]
        if extra:
            raise KeyError(f"{self.path}: columns {extra} are not in the header {self.fields}")
        with self.path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.fields)
            if new:
                w.writeheader()
            w.writerow({k: _fmt(v) for k, v in row.items()})


def _fmt(v: Any) -> Any:
    return f"{v:.6g}" if isinstance(v, float) else v


def read_csv(path: str | Path) -> list[dict[str, float]]:
    """Read a log written by :class:`CSVLog` as floats (empty cells are skipped)."""
    with Path(path).open(newline="") as f:
        return [{k: float(v) for k, v in r.items() if v not in ("", None)} for r in csv.DictReader(f)]


class RunLogger:
    """Writes ``train_log.csv``, ``val_log.csv``, ``samples.txt`` and TensorBoard events.

    Args:
        output_dir: the run folder.
        resume_step: step being resumed from (trims the CSVs), or ``None`` for a fresh run.
        tensorboard: write TensorBoard events if ``torch.utils.tensorboard`` imports.
    """

    def __init__(self, output_dir: Path, resume_step: int | None = None, tensorboard: bool = True) -> None:
        output_dir.mkdir(parents=True, exist_ok=True)
        self.train = CSVLog(output_dir / "train_log.csv", resume_step)
        self.val = CSVLog(output_dir / "val_log.csv", resume_step)
        self.samples_path = output_dir / "samples.txt"
        if resume_step is None and self.samples_path.exists():
            self.samples_path.unlink()
        self.tb: Any = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                log.info("tensorboard is not installed; logging to CSV only")
            else:
                self.tb = SummaryWriter(str(output_dir / "tensorboard"), purge_step=resume_step)

    def log_train(self, row: dict[str, Any]) -> None:
        """One training row (must contain ``step``)."""
        self.train.write(row)
        self._tb("train", row)

    def log_val(self, row: dict[str, Any]) -> None:
        """One validation row (must contain ``step``)."""
        self.val.write(row)
        self._tb("val", row)

    def log_samples(self, step: int, samples: list[tuple[str, str]]) -> None:
        """Decoded captions ``(ground truth, prediction)`` at ``step``, to ``samples.txt`` and the log."""
        lines = [f"== step {step}"]
        for i, (gt, pred) in enumerate(samples):
            lines += [f"[{i}] gt:   {gt}", f"[{i}] pred: {pred}"]
        with self.samples_path.open("a") as f:
            f.write("\n".join(lines) + "\n")
        for line in lines[1:]:
            log.info(line)

    def _tb(self, prefix: str, row: dict[str, Any]) -> None:
        if self.tb is None:
            return
        step = int(row["step"])
        for k, v in row.items():
            if k != "step" and isinstance(v, (int, float)):
                self.tb.add_scalar(f"{prefix}/{k}", v, step)

    def close(self) -> None:
        """Flush TensorBoard."""
        if self.tb is not None:
            self.tb.close()
