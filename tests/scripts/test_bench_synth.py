"""scripts/bench_synth.py runs with small arguments, alone and against a baseline tree (this one)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "bench_synth.py"


def _run(*args: str) -> str:
    res = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300,
                         cwd=ROOT)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_bench_synth_small() -> None:
    out = _run("--num", "3", "--size", "128", "--png-level", "1", "--stats")
    assert re.search(r"generation only: +[\d.]+ scenes/s wall, +[\d.]+ scenes/s CPU", out)
    assert re.search(r"generation \+ PNG/JSONL: +[\d.]+ scenes/s wall", out)


def test_bench_synth_compare_prints_the_speed_up() -> None:
    out = _run("--num", "2", "--size", "128", "--baseline", str(ROOT), "--rounds", "1")
    assert "round 1 baseline" in out and "round 1 this tree" in out
    assert re.search(r"^speed-up: \d+\.\d\d×$", out.strip().splitlines()[-1])


def test_bench_synth_rejects_a_tree_without_clvnet(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, str(SCRIPT), "--num", "2", "--baseline", str(tmp_path)],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert res.returncode != 0 and "no clvnet/__init__.py" in res.stderr
