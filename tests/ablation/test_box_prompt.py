"""The "w/o box prompt" variant: nothing the model computes depends on where the box is.

Checked through the model's public API (``build_model``, the processor, the forward pass and ``generate``) on
real SynthRS samples, with every weight perturbed so that zero-initialised paths (the box mark, the
grounding feed) cannot hide a dependence. The full model, perturbed the same way, is the control.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from ablationhelpers import SMALL

from clvnet.config import load_config
from clvnet.engine.config import TrainConfig


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from clvnet.data.synth import generate_split

    return Path(generate_split(tmp_path_factory.mktemp("synthrs"), 2, 0, split="test"))


def _outputs(name: str, jsonl: Path, move_box: bool) -> tuple[Any, ...]:
    from clvnet.data.dataset import GCGDataset, collate_gcg
    from clvnet.data.record import read_jsonl
    from clvnet.models import build_model, generate

    cfg = load_config(TrainConfig, f"synthrs_ablation/{name}", SMALL, section="experiments")
    torch.manual_seed(0)
    model = build_model(cfg.model, captions=[r.caption for r in read_jsonl(jsonl)]).eval()
    ds = GCGDataset(jsonl, cfg.data.dataset, train=False, views=model.processor.views)
    batch = collate_gcg([ds[i] for i in range(len(ds))])
    if move_box:   # another box and another crop, as if the user had drawn elsewhere
        g = torch.Generator().manual_seed(1)
        batch = dict(batch, box=torch.tensor([[0.6, 0.1, 0.95, 0.4]] * len(ds)),
                     region=torch.rand(batch["region"].shape, generator=g),
                     region_window=torch.tensor([[0.55, 0.05, 1.0, 0.45]] * len(ds)))
    with torch.no_grad():
        g = torch.Generator().manual_seed(2)
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
        out = model(model.processor(batch))
        gens = generate(model, batch["image"], batch["region"], batch["box"], max_new_tokens=8,
                        grounding_images=batch["grounding_image"], region_windows=batch["region_window"])
    return out.loss, out.mask_logits, [g.caption for g in gens], [g.mask_logits for g in gens]


def _same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    return (torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[2] == b[2]
            and all(torch.equal(x, y) for x, y in zip(a[3], b[3])))


def test_without_box_prompt_nothing_depends_on_the_box(scenes: Path) -> None:
    torch.set_num_threads(1)
    assert _same(_outputs("no_box_prompt", scenes, False), _outputs("no_box_prompt", scenes, True))


def test_the_full_model_does_depend_on_the_box(scenes: Path) -> None:
    torch.set_num_threads(1)
    assert not _same(_outputs("full", scenes, False), _outputs("full", scenes, True))
