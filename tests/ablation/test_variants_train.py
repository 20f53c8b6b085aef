"""Every variant of the suite builds and takes a training step (forward, backward) at a tiny size."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from ablationhelpers import SMALL

from clvnet.ablation.suite import PAPER_SUITE
from clvnet.config import load_config
from clvnet.engine.config import TrainConfig


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from clvnet.data.synth import generate_split

    return Path(generate_split(tmp_path_factory.mktemp("synthrs"), 2, 0, split="train"))


@pytest.mark.parametrize("name", [v.name for v in PAPER_SUITE if v.name != "greedy"])
def test_variant_trains(name: str, scenes: Path) -> None:
    from clvnet.data.dataset import GCGDataset, collate_gcg
    from clvnet.data.record import read_jsonl
    from clvnet.models import build_model

    torch.set_num_threads(1)
    cfg = load_config(TrainConfig, f"synthrs_ablation/{name}", SMALL, section="experiments")
    torch.manual_seed(0)
    model = build_model(cfg.model, captions=[r.caption for r in read_jsonl(scenes)])
    ds = GCGDataset(scenes, cfg.data.dataset, train=True, views=model.processor.views)
    out = model(model.processor(collate_gcg([ds[0], ds[1]])))
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in model.parameters())
