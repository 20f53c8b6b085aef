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
    rc = main(["quickstart", "--steps", "3", "--num-train", "16", "--num-val", "4", "--num-test", "4",
               "--scenes", "2", "--out", str(out), "--no-java", *SMALL])
    assert rc == 0
    printed = capsys.readouterr().out
    assert str(out / "report.md") in printed and str(out / "checkpoint") in printed
    assert "trained 3 of 3 steps in " in printed and "cap" not in printed
    md = (out / "report.md").read_text()
    assert "| model | CIDEr | AP50 | mIoU | Recall |" in md
    assert "- optimiser steps: 3 of 3\n" in md and "- --minutes cap: none" in md
    assert "- training wall time (s): " in md and "- training throughput (samples/s): " in md
    assert "| CLV-Net tiny |" in md and "| trivial baseline |" in md
    assert str(out / "checkpoint") in md
    html = (out / "report.html").read_text()
    assert "<table>" in html and "loss_curves.png" in html
    assert (out / "loss_curves.png").stat().st_size > 1000
    scenes = sorted(p.name for p in (out / "scenes").iterdir())
    assert len(scenes) == 2 and all(f"scenes/{s}" in html for s in scenes)
    assert (out / "checkpoint" / "model.safetensors").is_file()
    from clvnet.models.card import load_card

    card = load_card(out / "checkpoint")  # the trainer's card, with the quickstart's test metrics added
    assert card is not None and card.synthetic_only and card.steps == 3
    assert set(card.metrics) == {"synthrs-test"} and {"mIoU", "AP50"} <= set(card.metrics["synthrs-test"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["baseline"]["mIoU"] is not None and metrics["model"]["counts"]["images"] == 4
    # the data is reused on a second run with the same sizes (no regeneration)
    stamp = out / "data" / "train" / "quickstart_stamp.json"
    assert json.loads(stamp.read_text())["spec"]["num"] == 16


def test_minutes_cap_cuts_the_run_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A cap of a few nanoseconds is reached before the first step on any machine.
    out = tmp_path / "qs"
    rc = main(["quickstart", "--steps", "50", "--minutes", "1e-10", "--num-train", "8", "--num-val", "2",
               "--num-test", "2", "--scenes", "0", "--out", str(out), "--no-java", *SMALL])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "stopped by the --minutes cap at step 0 of 50" in printed
    md = (out / "report.md").read_text()
    assert "- optimiser steps: 0 of 50 (stopped by the --minutes cap at step 0 of 50)" in md
    assert "Training stopped by the --minutes cap at step 0 of 50" in md and "- --minutes cap: 1e-10" in md


def test_quickstart_rejects_bad_override(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["quickstart", "--steps", "2", "--num-train", "4", "--num-val", "2", "--num-test", "2",
               "--out", str(tmp_path / "qs"), "train.no_such_key=1"])
    assert rc == 2
    assert "train.no_such_key" in capsys.readouterr().err
    assert not (tmp_path / "qs" / "data").exists()  # failed before generating anything


@pytest.mark.parametrize(("args", "message"), [(["--steps", "0"], "--steps must be at least 1"),
                                               (["--minutes", "0"], "--minutes must be positive"),
                                               (["train.max_steps=null"], "sets no train.max_steps")])
def test_quickstart_rejects_bad_step_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                            message: str) -> None:
    assert main(["quickstart", "--out", str(tmp_path / "qs"), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "qs" / "data").exists()


def test_default_step_count_comes_from_the_config(tmp_path: Path) -> None:
    from clvnet.config import load_config
    from clvnet.engine.config import TrainConfig
    from clvnet.quickstart import DEFAULT_CONFIG, training_config

    shipped = load_config(TrainConfig, DEFAULT_CONFIG)
    assert shipped.train.max_steps is not None and shipped.train.time_budget_min is None
    cfg = training_config(DEFAULT_CONFIG, tmp_path, None, None, [])
    assert cfg.train.max_steps == shipped.train.max_steps and cfg.train.max_minutes is None
    cfg = training_config(DEFAULT_CONFIG, tmp_path, 7, 2.5, ["train.max_steps=9"])
    assert cfg.train.max_steps == 7 and cfg.train.max_minutes == 2.5    # --steps wins over an override


def test_training_set_and_cache_grow_with_the_steps() -> None:
    from clvnet.quickstart import MIN_TRAIN, default_num_train, scaled_cache_mb

    assert default_num_train(1600) == MIN_TRAIN == default_num_train(10)
    assert default_num_train(5000) == 12500 and default_num_train(6401) == 16003
    assert scaled_cache_mb(4096, MIN_TRAIN) == 4096 and scaled_cache_mb(0, 16000) == 0
    grown = scaled_cache_mb(1024, 2 * MIN_TRAIN)
    half_ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2 // 2**20
    assert grown == min(2048, half_ram) and grown >= 1024
    assert scaled_cache_mb(10**7, 2 * MIN_TRAIN) == max(10**7, half_ram)   # never shrinks the config's cache
