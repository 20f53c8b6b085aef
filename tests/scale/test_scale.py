"""The paper path at real size on this CPU (``make test-scale``): the 1.8b preset with random weights.

CLIP ViT-L/14-336, SAM2 Hiera-L at 1024 px and an LLM with InternLM2.5-1.8B's dimensions (a native Llama of the
same shape, bf16) take one optimiser step on two GeoPixelD-format records (the real sample and its mirror image,
converted by ``clvnet data convert``) through the real trainer, then decode 16 tokens through the real predictor.
It prints the peak RSS and the step time; the machine has 24 GB.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LIMIT_GB = 24.0


@pytest.mark.scale
def test_1_8b_preset_trains_and_decodes_at_real_size(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    res = subprocess.run([sys.executable, "scripts/bench_paper.py", "--preset", "1.8b", "--random-weights", "--check",
                          "--device", "cpu", "--threads", "2", "--out", str(out)],
                         cwd=REPO, capture_output=True, text=True, timeout=3600)
    assert res.returncode == 0, res.stderr[-4000:]
    r = json.loads(out.read_text())
    print(f"\n1.8b at real size on CPU: {r['params']:,} parameters ({r['trainable']:,} trainable), "
          f"one optimiser step (batch {r['batch']}) {r['train_step_s']:.1f} s {r['train_step_split_s']}, "
          f"16 tokens + masks for one box {r['decode_1']['seconds']:.1f} s, peak RSS {r['peak_rss_gb']:.1f} GB, "
          f"total {r['total_s']:.0f} s")
    assert 2.3e9 < r["params"] < 2.6e9 and r["timed_steps"] == 1
    assert all(math.isfinite(v) for v in r["loss"])
    assert r["decode_1"]["new_tokens"] == 16
    assert r["peak_rss_gb"] < LIMIT_GB
