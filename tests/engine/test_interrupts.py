"""Interruptions: SIGINT/SIGTERM save and exit cleanly; ``kill -9`` loses only the steps since the last checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from enginehelpers import small_experiment, write_experiment

from clvnet.config import load_config
from clvnet.engine import checkpointing as ck
from clvnet.engine.config import TrainConfig
from clvnet.engine.trainer import Trainer


def test_sigint_in_process_saves_after_current_step(experiment: Path, tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGINT)    # SIG_IGN when the test run was started in the background
    tr = Trainer(load_config(TrainConfig, experiment, ["train.max_steps=50"]))
    model = tr.acc.unwrap_model(tr.model)
    real_forward = model.forward
    calls = {"n": 0}

    def forward(inputs: dict) -> object:
        calls["n"] += 1
        if calls["n"] == 2:
            os.kill(os.getpid(), signal.SIGINT)  # arrives mid-step, as Ctrl-C would
        return real_forward(inputs)

    model.forward = forward  # type: ignore[method-assign]
    path = tr.fit()
    assert tr.state.step == 2
    assert path == tmp_path / "run" / "checkpoints" / "checkpoint-0000002"
    assert ck.read_state(path)["step"] == 2
    assert signal.getsignal(signal.SIGINT) is before  # handlers restored


def _wait_for(pred, timeout: float, proc: subprocess.Popen) -> None:  # type: ignore[no-untyped-def]
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return
        if proc.poll() is not None:
            raise AssertionError(f"training exited early with {proc.returncode}")
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("timed out waiting for a checkpoint")


@pytest.mark.slow
def test_sigkill_then_resume_auto_then_sigterm(synth_data: dict[str, Path], tmp_path: Path) -> None:
    run = tmp_path / "run"
    exp = write_experiment(tmp_path / "exp.yaml", small_experiment(synth_data, run, max_steps=500, save_every=2))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "clvnet", "train", "--config", str(exp)]
    with (tmp_path / "log1.txt").open("w") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        _wait_for(lambda: any(s >= 4 for s, _ in ck.list_checkpoints(run / "checkpoints")), 180, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    latest = ck.find_latest(run)
    assert latest is not None
    saved = ck.read_state(latest)["step"]
    assert saved >= 4

    # --resume auto continues from the last complete checkpoint, through the CLI, in a new process
    with (tmp_path / "log2.txt").open("w") as log:
        proc = subprocess.Popen([*cmd, "--resume", "auto"], env=env, stdout=log, stderr=subprocess.STDOUT)
        _wait_for(lambda: any(s >= saved + 2 for s, _ in ck.list_checkpoints(run / "checkpoints")), 180, proc)
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(120)
    text = (tmp_path / "log2.txt").read_text()
    assert rc == 0, text[-2000:]
    assert f"resumed from {latest} at step {saved}" in text
    assert "stopped by signal 15" in text
    final = ck.find_latest(run)
    assert final is not None
    state = json.loads((final / ck.STATE_FILE).read_text())
    assert state["step"] > saved
    steps = [int(float(line.split(",")[0])) for line in (run / "train_log.csv").read_text().splitlines()[1:]]
    assert steps == list(range(1, state["step"] + 1))  # one consistent log: no gap, no duplicate
