"""Real processes: a 2-rank ``torchrun`` run on CPU (gloo), and ``kill -9`` in the middle of a run, then resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FAST, read_layer, write_scenes
from testkit import free_port

from clvnet.cli import main
from clvnet.inference.archive import parts


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.mark.slow
def test_torchrun_two_ranks(tmp_path: Path, tiny_checkpoint: Path) -> None:
    scenes = tmp_path / "scenes"
    write_scenes(scenes, n=3, size=128)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
           str(free_port()), "-m", "clvnet", "predict", "--images", str(scenes), "--grid", "64",
           "--checkpoint", str(tiny_checkpoint), "--out", str(out), *FAST]
    res = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    ranks = {}
    for r in (0, 1):
        lines = parts.part_path(out, r).read_text().splitlines()
        assert lines, f"rank {r} wrote nothing"
        ranks[r] = {json.loads(line)["box"]["raster"] for line in lines}
    assert not ranks[0] & ranks[1]  # every raster's boxes on one rank
    _, _, cols = read_layer(out / "predictions.gpkg", "boxes")  # merged by rank 0
    assert sorted(cols["box_id"]) == sorted(f"{s}_x{x}_y{y}" for s in "abc" for x in (0, 64) for y in (0, 64))
    assert "wrote" in res.stderr and "predictions.gpkg: 12 boxes" in res.stderr


@pytest.mark.slow
def test_kill_9_then_resume_has_every_box_once(tmp_path: Path, tiny_checkpoint: Path) -> None:
    scenes = tmp_path / "scenes"
    write_scenes(scenes, n=2, size=128)
    out = tmp_path / "out"
    args = ["predict", "--images", str(scenes), "--grid", "32", "--checkpoint", str(tiny_checkpoint),
            "--out", str(out), "--batch-size", "1", *FAST]
    proc = subprocess.Popen([sys.executable, "-m", "clvnet", *args], env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    part = parts.part_path(out, 0)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if part.is_file() and len(part.read_bytes().splitlines()) >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    done_before = parts.done_keys(out)
    assert 3 <= len(done_before) < 32
    assert not (out / "predictions.gpkg").exists()
    assert main(args) == 0
    _, _, cols = read_layer(out / "predictions.gpkg", "boxes")
    ids = cols["box_id"].tolist()
    assert len(ids) == len(set(ids)) == 32  # 2 scenes x 16 tiles, each exactly once
    _, _, pcols = read_layer(out / "predictions.gpkg", "phrases")
    assert sorted(pcols["box_id"].tolist()) == sorted(ids)  # one phrase per box, none doubled
