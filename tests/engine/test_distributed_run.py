"""Two CPU processes (gloo) under torchrun: identical weights every step, one checkpoint, 1-process resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from enginehelpers import small_experiment, write_experiment

DRIVER = '''
import sys, json, torch
import torch.distributed as dist
from clvnet.config import load_config
from clvnet.engine.config import TrainConfig
from clvnet.engine.trainer import Trainer


class Checked(Trainer):
    """Gathers every rank's flattened weights after each optimiser step; rank 0 records whether they agree."""

    def _after_step(self, tm, elapsed, pbar):
        flat = torch.cat([p.detach().reshape(-1) for p in self.acc.unwrap_model(self.model).parameters()])
        out = [torch.empty_like(flat) for _ in range(dist.get_world_size())]
        dist.all_gather(out, flat)
        if dist.get_rank() == 0:
            with open(sys.argv[2], "a") as f:
                f.write(json.dumps({"step": self.state.step, "equal": all(torch.equal(out[0], o) for o in out[1:]),
                                    "world": dist.get_world_size()}) + "\\n")
        super()._after_step(tm, elapsed, pbar)


cfg = load_config(TrainConfig, sys.argv[1])
Checked(cfg).fit()
'''


@pytest.mark.slow
def test_two_process_gloo_run_and_single_process_resume(synth_data: dict[str, Path], tmp_path: Path) -> None:
    run = tmp_path / "run"
    exp = write_experiment(tmp_path / "exp.yaml", small_experiment(synth_data, run, max_steps=3, batch_size=2))
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    checks = tmp_path / "checks.jsonl"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(driver), str(exp), str(checks)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(x) for x in checks.read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert all(r["equal"] and r["world"] == 2 for r in rows)
    # rank 0 alone wrote: one checkpoint, one log
    assert not (run / "checkpoints").exists()
    state = json.loads((run / "checkpoint" / "trainer_state.json").read_text())
    assert state["step"] == 3 and state["world_size"] == 2 and state["position"] == 6
    assert len(json.loads((run / "checkpoint" / "rng.json").read_text())) == 2  # both ranks' RNG states
    assert len((run / "train_log.csv").read_text().splitlines()) == 1 + 3

    from clvnet.config import load_config
    from clvnet.engine.config import TrainConfig
    from clvnet.engine.trainer import Trainer

    cfg = load_config(TrainConfig, exp, ["train.max_steps=5", "train.batch_size=2"])
    tr = Trainer(cfg, resume="auto")
    assert tr.state.step == 3
    tr.fit()
    assert tr.state.step == 5
    assert json.loads((run / "checkpoint" / "trainer_state.json").read_text())["world_size"] == 1
