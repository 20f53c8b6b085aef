"""``clvnet predict`` states what the checkpoint was trained on (its model card) in one header line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from clvnet.cli import main
from clvnet.models.card import ModelCard, save_card


def test_predict_prints_the_model_card(tiny_checkpoint: Path, example_png: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, ckpt)
    args = ["predict", str(example_png), "--checkpoint", str(ckpt), "--box", "10", "20", "70", "90",
            "--max-new-tokens", "4"]
    assert main(args) == 0
    assert "model card: none" in capsys.readouterr().err
    save_card(ckpt, ModelCard(data_name="synthrs", data_version="1.1", steps=1600, samples_seen=12800,
                              metrics={"synthrs-test": {"mIoU": 70.0}}))
    assert main(args) == 0
    captured = capsys.readouterr()
    line = next(x for x in captured.err.splitlines() if x.startswith("model card:"))
    assert "synthrs 1.1 (synthetic scenes only, not real imagery)" in line and "1,600 steps" in line
    assert "synthrs-test: mIoU 70.0" in line and "model card" not in captured.out  # stdout stays the captions


def test_predict_refuses_a_question_unless_the_card_says_the_model_was_trained_with_questions(
        tiny_checkpoint: Path, example_png: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A question in place of the one training instruction makes a model loop on its opening words ("a top-down
    view of a top-down view of ..."): predict refuses it, writing nothing, unless the card says otherwise."""
    ckpt, out = tmp_path / "ckpt", tmp_path / "out"
    shutil.copytree(tiny_checkpoint, ckpt)
    args = ["predict", str(example_png), "--checkpoint", str(ckpt), "--box", "10", "20", "70", "90",
            "--max-new-tokens", "4", "--query", "How many cars?", "--out", str(out)]
    assert main(args) == 2
    assert "cannot answer questions" in capsys.readouterr().err and not list(out.glob("*"))
    save_card(ckpt, ModelCard(data_name="synthrs", data_version="1.1", steps=10, trained_with_questions=True))
    assert main(args) == 0
    assert list(out.glob("*.json"))
