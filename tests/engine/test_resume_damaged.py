"""Resuming from a damaged checkpoint: a clear error for ``--resume DIR``, a fallback that says so for
``--resume auto``, never a safetensors traceback."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from clvnet.cli import main
from clvnet.engine import checkpointing as ckpt


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.fixture
def run(experiment: Path, tmp_path: Path) -> Path:
    """A 4-step run with a periodic checkpoint at step 2 and the final one at step 4."""
    assert main(["train", "--config", str(experiment), "train.save_every=2", "train.keep_last=3"]) == 0
    out = tmp_path / "run"
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["checkpoint-0000002"]
    return out


def test_resume_from_a_truncated_checkpoint_names_the_file(run: Path, experiment: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    _truncate(run / "checkpoint" / "model.safetensors")
    rc = main(["train", "--config", str(experiment), "train.max_steps=6", "--resume", str(run / "checkpoint")])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert f"--resume {run / 'checkpoint'}: the checkpoint is damaged: model.safetensors is truncated" in err


@pytest.mark.parametrize("damage", ["model.safetensors", "optimizer.safetensors", "trainer_state.json"])
def test_resume_auto_falls_back_to_the_newest_intact_checkpoint(run: Path, experiment: Path, damage: str,
                                                                caplog: pytest.LogCaptureFixture,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.INFO, logger="clvnet.train")
    _truncate(run / "checkpoint" / damage)
    assert ckpt.check_checkpoint(run / "checkpoint") and not ckpt.check_checkpoint(run / "checkpoints" / "checkpoint-0000002")
    rc = main(["train", "--config", str(experiment), "train.max_steps=6", "--resume", "auto"])
    assert rc == 0, capsys.readouterr().err
    assert f"--resume auto: skipping {run / 'checkpoint'}: " in caplog.text and damage in caplog.text
    assert f"resuming from {run / 'checkpoints' / 'checkpoint-0000002'}, the newest checkpoint that is intact" in caplog.text
    assert "resumed from" in caplog.text and "at step 2" in caplog.text
    assert ckpt.read_state(run / "checkpoint")["step"] == 6 and not ckpt.check_checkpoint(run / "checkpoint")


def test_resume_auto_with_every_checkpoint_damaged_is_an_error(run: Path, experiment: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    _truncate(run / "checkpoint" / "model.safetensors")
    _truncate(run / "checkpoints" / "checkpoint-0000002" / "rng.safetensors")
    rc = main(["train", "--config", str(experiment), "train.max_steps=6", "--resume", "auto"])
    err = capsys.readouterr().err
    assert rc == 2 and "no usable checkpoint" in err and "rng.safetensors is truncated" in err, err
