"""DeepSpeed ZeRO-2 (the 7B presets' path), as far as a CPU allows: the shipped accelerate config launches the
real trainer under DeepSpeed's CPU accelerator, trains, checkpoints and resumes. What only GPUs can check is in
docs/design.md §7 (ZeRO-2 partitioning across several ranks, NCCL, bf16 kernels, the memory savings)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from enginehelpers import small_experiment, write_experiment

from clvnet.config import packaged_configs
from clvnet.engine.distributed import configure_deepspeed


def _accelerator(processes: int, **ds: object) -> SimpleNamespace:
    plugin = SimpleNamespace(deepspeed_config={"train_batch_size": "auto", "train_micro_batch_size_per_gpu": "auto", **ds})
    return SimpleNamespace(num_processes=processes, state=SimpleNamespace(deepspeed_plugin=plugin))


def test_configure_deepspeed_takes_the_clvnet_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "4")
    acc = _accelerator(4, gradient_accumulation_steps="auto", gradient_clipping=1.0)
    configure_deepspeed(acc, batch_size=2, grad_accum=3, grad_clip=1.0)
    ds = acc.state.deepspeed_plugin.deepspeed_config
    assert (ds["train_micro_batch_size_per_gpu"], ds["train_batch_size"], ds["gradient_accumulation_steps"]) == (2, 24, 3)
    with pytest.raises(ValueError, match=r"gradient_clipping=0.5 but optim.grad_clip=1.0"):
        configure_deepspeed(_accelerator(4, gradient_clipping=0.5), batch_size=2, grad_accum=1, grad_clip=1.0)
    with pytest.raises(ValueError, match=r"accelerate sees 1 process\(es\) but 4 were launched"):
        configure_deepspeed(_accelerator(1), batch_size=2, grad_accum=1, grad_clip=1.0)


@pytest.mark.slow
def test_zero2_config_trains_and_resumes_on_one_cpu_process(synth_data: dict[str, Path], tmp_path: Path) -> None:
    pytest.importorskip("deepspeed", reason="the deepspeed extra: pip install -e .[deepspeed]")
    accelerate = Path(sys.executable).parent / "accelerate"
    if shutil.which("g++") is None:
        pytest.skip("DeepSpeed builds its CPU communication op with g++")
    run = tmp_path / "run"
    exp = write_experiment(tmp_path / "exp.yaml", small_experiment(synth_data, run, max_steps=2, batch_size=2))
    cmd = [str(accelerate), "launch", "--config_file", str(packaged_configs() / "accelerate" / "deepspeed_zero2.yaml"),
           "--num_processes", "1", "--mixed_precision", "no", "-m", "clvnet", "train", "--config", str(exp)]
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1"}
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-4000:]
    assert "distributed: DistributedType.DEEPSPEED, 1 process(es)" in first.stderr
    assert json.loads((run / "checkpoint" / "trainer_state.json").read_text())["step"] == 2
    assert not (run / "checkpoint" / "optimizer.safetensors").exists()      # ZeRO shards its optimiser state
    again = subprocess.run([*cmd, "train.max_steps=3", "--resume", str(run / "checkpoint")], env=env,
                           capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-4000:]
    assert "no optimiser state" in again.stderr
    assert json.loads((run / "checkpoint" / "trainer_state.json").read_text())["step"] == 3
