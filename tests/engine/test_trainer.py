"""The trainer through the real CLI and API: logs, checkpoints, exact resume, bad input, non-finite losses."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from clvnet.cli import main
from clvnet.config import load_config
from clvnet.engine.config import TrainConfig
from clvnet.engine.logging import read_csv
from clvnet.engine.trainer import Trainer, TrainingAborted


def _cfg(experiment: Path, *overrides: str) -> TrainConfig:
    return load_config(TrainConfig, experiment, list(overrides))


def test_cli_trains_logs_validates_and_checkpoints(experiment: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                   ) -> None:
    rc = main(["train", "--config", str(experiment), "train.val_every=2", "train.save_every=3", "train.keep_last=1"])
    assert rc == 0
    run = tmp_path / "run"
    assert f"checkpoint: {run / 'checkpoint'}" in capsys.readouterr().out
    rows = read_csv(run / "train_log.csv")
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    for key in ("total", "caption", "mask_bce", "mask_dice", "csc", "rec", "lr", "samples_per_s", "forward_s"):
        assert all(math.isfinite(r[key]) for r in rows), key
    assert rows[0]["lr"] == pytest.approx(0.5e-3)  # linear warm-up over 2 steps
    val = read_csv(run / "val_log.csv")
    assert [r["step"] for r in val] == [2, 4] and {"loss", "miou", "ap50"} <= set(val[0])
    assert "pred:" in (run / "samples.txt").read_text()
    # step 2: best so far (saved when validated), step 3: periodic; keep_last=1 keeps 3 plus the best, unless 4
    # (the final checkpoint) is the best. The model is in the strict folder format.
    state = json.loads((run / "checkpoint" / "trainer_state.json").read_text())
    kept = sorted(p.name for p in (run / "checkpoints").iterdir())
    if state["best_step"] == 2:
        assert kept == ["checkpoint-0000002", "checkpoint-0000003"]
        assert state["best_path"] == str(run / "checkpoints" / "checkpoint-0000002")
    else:
        assert state["best_step"] == 4 and state["best_path"] == str(run / "checkpoint")
        assert kept == ["checkpoint-0000003"]
    final = run / "checkpoint"
    assert {"config.yaml", "model.safetensors", "optimizer.safetensors", "rng.safetensors",
            "trainer_state.json", "train_config.yaml", "model_card.json"} <= {p.name for p in final.iterdir()}
    # every checkpoint carries its model card: the data it was trained on and the steps so far
    from clvnet.data.synth import SYNTHRS_VERSION
    from clvnet.models.card import load_card

    card = load_card(final)
    assert card is not None and card.synthetic_only and card.data_version == SYNTHRS_VERSION
    assert card.data_sources == {"synthrs": 12} and card.steps == 4 and not card.trained_with_questions
    assert card.samples_seen == 4 * 4  # 4 steps of batch 4, one process, no accumulation
    assert card.image_stats is not None and card.image_stats.n_images == 12
    assert all(0 < m < 255 for m in card.image_stats.mean) and card.metrics == {}
    periodic = load_card(run / "checkpoints" / "checkpoint-0000003")
    assert periodic is not None and periodic.steps == 3
    from clvnet.models import from_pretrained

    model = from_pretrained(final)
    saved = load_file(str(final / "model.safetensors"))
    name, tensor = next(iter(saved.items()))
    assert torch.equal(model.state_dict()[name], tensor)


@pytest.mark.parametrize("workers", [0, 1])
def test_resume_continues_exactly(experiment: Path, tmp_path: Path, workers: int) -> None:
    w = f"data.num_workers={workers}"  # with a worker, augmentation draws come from (seed, epoch, index)
    straight = Trainer(_cfg(experiment, "train.save_every=2", f"output_dir={tmp_path / 'a'}", w))
    straight.fit()
    ckpt2 = tmp_path / "a" / "checkpoints" / "checkpoint-0000002"
    resumed = Trainer(_cfg(experiment, f"output_dir={tmp_path / 'b'}", w), resume=str(ckpt2))
    assert resumed.state.step == 2 and resumed.state.position == 8
    resumed.fit()
    pa = dict(straight.acc.unwrap_model(straight.model).named_parameters())
    pb = dict(resumed.acc.unwrap_model(resumed.model).named_parameters())
    assert pa.keys() == pb.keys()
    for k in pa:
        assert torch.equal(pa[k], pb[k]), k
    la, lb = read_csv(tmp_path / "a" / "train_log.csv"), read_csv(tmp_path / "b" / "train_log.csv")
    assert [r["total"] for r in la[2:]] == [r["total"] for r in lb]


def test_resume_auto_without_checkpoint_starts_fresh(experiment: Path) -> None:
    tr = Trainer(_cfg(experiment, "train.max_steps=1"), resume="auto")
    assert tr.resume_dir is None and tr.state.step == 0


def test_unknown_key_and_missing_path_fail_before_training(experiment: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--config", str(experiment), "train.batch_sise=2"]) == 2
    assert "train.batch_sise" in capsys.readouterr().err
    assert main(["train", "--config", str(experiment), f"data.val={tmp_path / 'nope.jsonl'}"]) == 2
    err = capsys.readouterr().err
    assert "data.val" in err and "nope.jsonl" in err
    assert not (tmp_path / "run").exists()


def test_checkpoint_of_other_model_config_names_keys(experiment: Path, tmp_path: Path) -> None:
    Trainer(_cfg(experiment, "train.max_steps=1")).fit()
    with pytest.raises(ValueError, match=r"llm\.config\.hidden_size"):
        Trainer(_cfg(experiment, "model.llm.config.hidden_size=48"), resume=str(tmp_path / "run" / "checkpoint"))


def test_nonfinite_loss_skips_then_aborts_with_checkpoint(experiment: Path, tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    tr = Trainer(_cfg(experiment, "train.max_steps=20", "train.max_nonfinite=3"))
    model = tr.acc.unwrap_model(tr.model)
    real_forward = model.forward
    calls = {"n": 0}

    def flaky(inputs: dict) -> object:
        out = real_forward(inputs)
        calls["n"] += 1
        if calls["n"] == 2 or calls["n"] >= 4:  # one isolated NaN, then NaNs for good
            out.loss = out.loss * float("nan")
        return out

    model.forward = flaky  # type: ignore[method-assign]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(TrainingAborted, match="3 non-finite losses in a row"):
        tr.fit()
    assert "non-finite loss" in caplog.text
    # micro-batches 1 and 3 stepped, 2 was skipped, 4-6 aborted: 2 optimiser steps, all weights finite
    assert tr.state.step == 2
    saved = tmp_path / "run" / "checkpoints" / "checkpoint-0000002"
    assert saved.is_dir()
    after = model.state_dict()
    assert all(torch.isfinite(v).all() for v in after.values() if v.is_floating_point())
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_gradient_checkpointing_and_bf16_autocast_run_on_cpu(experiment: Path, tmp_path: Path) -> None:
    tr = Trainer(_cfg(experiment, "train.max_steps=1", "train.gradient_checkpointing=true", "train.precision=bf16"))
    llm = tr.acc.unwrap_model(tr.model).reasoner.llm
    assert llm.is_activation_checkpointing
    assert tr.acc.mixed_precision == "bf16"
    tr.fit()
    assert math.isfinite(read_csv(tmp_path / "run" / "train_log.csv")[0]["total"])


def test_a_data_size_that_contradicts_the_model_fails_at_start_up(experiment: Path, tmp_path: Path) -> None:
    from clvnet.config import ConfigError

    with pytest.raises(ConfigError, match=r"'data.dataset.image_size' = 336 contradicts "
                                          r"'model.vision.config.image_size', which gives 64"):
        Trainer(_cfg(experiment, "data.dataset.image_size=336"))
    assert not (tmp_path / "run").exists()


def test_schedule_runs_on_steps_and_the_time_cap_stops_early(experiment: Path, tmp_path: Path) -> None:
    from clvnet.engine.schedule import lr_factor, step_progress

    # with a generous cap the run is the plain step-bounded run: lr from the step alone
    straight = Trainer(_cfg(experiment, "train.save_every=2", "train.max_minutes=60", f"output_dir={tmp_path / 'a'}"))
    straight.fit()
    assert not straight.stopped_by_time_cap and straight.state.step == 4
    lrs = [r["lr"] for r in read_csv(tmp_path / "a" / "train_log.csv")]
    sched = straight.cfg.schedule
    assert lrs == pytest.approx([1e-3 * lr_factor(sched, k, step_progress(k, 4, 2)) for k in range(4)])
    # resumed at step 2 with a cap of the time already spent: the cap stops it at once, and says so
    ckpt2 = tmp_path / "a" / "checkpoints" / "checkpoint-0000002"
    spent = json.loads((ckpt2 / "trainer_state.json").read_text())["elapsed"]
    capped = Trainer(_cfg(experiment, f"train.max_minutes={spent / 60}", f"output_dir={tmp_path / 'b'}"),
                     resume=str(ckpt2))
    final = capped.fit()
    assert capped.stopped_by_time_cap and capped.state.step == 2
    assert json.loads((final / "trainer_state.json").read_text())["step"] == 2
