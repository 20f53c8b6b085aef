"""``clvnet quickstart`` end to end through the real CLI, shrunk to a few scenes and seconds."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from clvnet.cli import main

SMALL = ["model.vision.config.image_size=64", "model.vision.config.num_hidden_layers=1",
         "model.llm.config.hidden_size=32", "model.llm.config.intermediate_size=64",
         "model.llm.config.num_hidden_layers=1", "model.llm.tokenizer_vocab_size=300",
         "model.grounding.image_size=64", "model.mask_decoder.mask_size=32", "model.generation.max_new_tokens=12",
         "model.region.crop_size=32",
         "data.num_workers=0", "data.val_max_samples=4", "train.batch_size=4", "train.log_every=1",
         "train.val_every=2", "train.val_max_new_tokens=8", "train.progress=false", "train.cpu_threads=1"]


def test_quickstart_writes_report_with_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "qs"
    rc = main(["quickstart", "--minutes", "0.1", "--num-train", "16", "--num-val", "4", "--num-test", "4",
               "--scenes", "2", "--out", str(out), "--no-java", *SMALL])
    assert rc == 0
    printed = capsys.readouterr().out
    assert str(out / "report.md") in printed and str(out / "checkpoint") in printed
    md = (out / "report.md").read_text()
    assert "| model | CIDEr | AP50 | mIoU | Recall |" in md
    assert "| CLV-Net tiny |" in md and "| trivial baseline |" in md
    assert str(out / "checkpoint") in md
    html = (out / "report.html").read_text()
    assert "<table>" in html and "loss_curves.png" in html
    assert (out / "loss_curves.png").stat().st_size > 1000
    scenes = sorted(p.name for p in (out / "scenes").iterdir())
    assert len(scenes) == 2 and all(f"scenes/{s}" in html for s in scenes)
    assert (out / "checkpoint" / "model.safetensors").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["baseline"]["mIoU"] is not None and metrics["model"]["counts"]["images"] == 4
    # the data is reused on a second run with the same sizes (no regeneration)
    stamp = out / "data" / "train" / "quickstart_stamp.json"
    assert json.loads(stamp.read_text())["spec"]["num"] == 16


def test_quickstart_rejects_bad_override(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["quickstart", "--minutes", "0.1", "--num-train", "4", "--num-val", "2", "--num-test", "2",
               "--out", str(tmp_path / "qs"), "train.no_such_key=1"])
    assert rc == 2
    assert "train.no_such_key" in capsys.readouterr().err
    assert not (tmp_path / "qs" / "data").exists()  # failed before generating anything


def test_training_set_and_cache_grow_with_the_budget() -> None:
    from clvnet.quickstart import MIN_TRAIN, default_num_train, scaled_cache_mb

    assert default_num_train(10) == MIN_TRAIN == default_num_train(0.1)
    assert default_num_train(40) == 16000 and default_num_train(12.5) == 5000
    assert scaled_cache_mb(4096, MIN_TRAIN) == 4096 and scaled_cache_mb(0, 16000) == 0
    grown = scaled_cache_mb(1024, 2 * MIN_TRAIN)
    half_ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2 // 2**20
    assert grown == min(2048, half_ram) and grown >= 1024
    assert scaled_cache_mb(10**7, 2 * MIN_TRAIN) == max(10**7, half_ram)   # never shrinks the config's cache
