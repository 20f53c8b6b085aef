"""``clvnet ablate`` end to end through the real CLI, shrunk to a few scenes and steps.

Two seeds of the full model, greedy decoding (which reuses the full model's checkpoints), "neither
loss" and lambda = 0 (one run on two rows), and a variant of our own that fails, evaluated on
SynthRS-test and SynthRS-hard with the twin-confusion rate and a metric of the test's own; then a
second call that finds everything done.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ablationhelpers import SMALL

from clvnet.ablation.runner import Job, execute
from clvnet.cli import main
from clvnet.config import packaged_configs

FULL_YAML = packaged_configs() / "experiments" / "synthrs_ablation" / "full.yaml"


def _args(out: Path) -> list[str]:
    return ["ablate", "--steps", "2", "--seeds", "2", "--jobs", "2", "--num-train", "16", "--num-val", "0",
            "--num-test", "4", "--num-hard", "3", "--no-java", "--out", str(out),
            "--metric", "ablationhelpers:phrases_per_scene", *SMALL]


def test_ablate_runs_dedups_reports_failures_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    broken = tmp_path / "broken.yaml"          # fails when its trainer builds the optimiser
    broken.write_text(f"defaults:\n  - {FULL_YAML}\noptim: {{lr: -1.0}}\n")
    out = tmp_path / "abl"
    assert main([*_args(out), "--variants", f"full,greedy,no_sralign,lambda_0,{broken}"]) == 0
    assert "runs: 10 (variant, seed) pairs, 2 failed" in capsys.readouterr().out

    results = json.loads((out / "results.json").read_text())
    runs = {(r["variant"], r["seed"]): r for r in results["runs"]}
    assert len(runs) == 10 and results["steps"] == 2 and results["seeds"] == [0, 1]
    for name in ("full", "greedy", "no_sralign", "lambda_0"):
        for seed in (0, 1):
            r = runs[(name, seed)]
            assert r["status"] == "ok" and r["steps"] == 2 and r["train_wall_s"] > 0, (name, seed)
            m, hard = r["metrics"]["SynthRS-test"], r["metrics"]["SynthRS-hard"]
            assert m["counts"]["images"] == 4 and all(isinstance(m[k], float) for k in ("CIDEr", "AP50", "mIoU"))
            assert hard["counts"]["images"] == 3 and "twin_confusion" in hard and "twin confusion" in hard
            assert m["gt phrases/scene"] > 0
            assert r["extra_names"] == ["twin confusion", "pred phrases/scene", "gt phrases/scene"]
    for seed in (0, 1):
        assert runs[("broken", seed)]["status"] == "failed"
        assert "Invalid learning rate" in runs[("broken", seed)]["error"]
        # one training for lambda = 0 and "neither loss"; greedy decodes the full model's checkpoints
        assert runs[("lambda_0", seed)]["metrics"] == runs[("no_sralign", seed)]["metrics"]
        assert runs[("greedy", seed)]["run_dir"] == runs[("full", seed)]["run_dir"]
    assert sorted(p.name.split("-")[0] for p in (out / "runs").iterdir()) == ["broken", "full", "no_sralign"]
    assert len(list((out / "runs").glob("full-*/seed0/eval-*-SynthRS-test-*.json"))) == 2   # beams and greedy

    md = (out / "table.md").read_text()
    assert "## SynthRS-test (4 scenes)" in md and "## SynthRS-hard (3 scenes)" in md
    assert "| twin confusion | twin confusion Δ (t) | twin confusion paper Δ |" in md and "pred phrases/scene Δ (t)" in md
    row = next(line for line in md.splitlines() if line.startswith("| w/o L_csc and L_rec |"))
    assert "| 2/2 |" in row and "same run as λ = 0" in row and "| -0.8 |" in row    # Table IV's CIDEr Δ
    assert "evaluates the checkpoints of full model" in md
    row = next(line for line in md.splitlines() if line.startswith("| broken |"))
    assert "| 0/2 |" in row and "failed (seed 0, 1): training: ValueError: Invalid learning rate" in row
    html = (out / "table.html").read_text()
    assert "<table>" in html and "Invalid learning rate" in html and 'src="plot.png"' in html
    assert (out / "plot.png").read_bytes()[:4] == b"\x89PNG"

    # a second call (without the failing variant) finds every run done and starts nothing
    written = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("*.json")}
    assert main([*_args(out), "--variants", "full,greedy,no_sralign,lambda_0"]) == 0
    assert "runs: 8 (variant, seed) pairs, 0 failed" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("*.json")} == written
    again = {(r["variant"], r["seed"]): r for r in json.loads((out / "results.json").read_text())["runs"]}
    assert all(again[k]["metrics"] == runs[k]["metrics"] for k in again)


def test_a_worker_that_dies_is_recorded_as_failed(tmp_path: Path) -> None:
    run = tmp_path / "run" / "seed0"
    split = {"name": "SynthRS-test", "jsonl": "x.jsonl", "file": str(run / "eval-x.json")}
    job = Job("bad", 0, run, {"run_dir": str(run), "config": {"no_such_section": 1}, "threads": 1,
                              "evals": [{"eval_key": "x", "generation": {}, "splits": [split]}],
                              "metrics": [], "use_java": False})
    execute([job], parallel=1)
    train = json.loads((run / "train.json").read_text())
    assert train["status"] == "failed" and "worker exited with code 1" in train["error"]
    assert "no_such_section" in train["error"]                                   # the log's last line
    assert "worker exited with code 1" in json.loads((run / "eval-x.json").read_text())["error"]


@pytest.mark.parametrize(("args", "message"), [
    (["--variants", "full,nope"], "unknown variant 'nope'"),
    (["--jobs", "0"], "--jobs must be at least 1"),
    (["--seeds", "0"], "--seeds must be at least 1"),
    (["--num-hard", "-1"], "--num-hard must be at least 0"),
    (["--metric", "nodots"], "must look like module:function"),
    (["--metric", "clvnet.nope:f"], "No module named"),
    (["--test-split", "hard"], "must look like NAME=JSONL"),
    (["--test-split", "hard=missing.jsonl"], "file not found"),
])
def test_bad_arguments_fail_before_any_data(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                            message: str) -> None:
    assert main(["ablate", "--out", str(tmp_path / "abl"), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "abl").exists()
