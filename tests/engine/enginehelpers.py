"""Helpers of the engine tests: a very small experiment config composed from the real presets.

The experiment composes the real shipped ``model/tiny.yaml`` and ``data/synthrs.yaml``
(through ``defaults:``) and shrinks every size so a step takes well under a second on one core.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from clvnet.config import packaged_configs

CONFIGS = packaged_configs()


def small_experiment(synth: dict[str, Path], out: Path, **train: object) -> dict[str, object]:
    """A tiny experiment dict (write it with :func:`write_experiment`)."""
    loop = {"max_steps": 4, "batch_size": 4, "log_every": 1, "val_every": 0, "save_every": 0, "device": "cpu",
            "val_captions": 1, "val_max_new_tokens": 8, "progress": False, "cpu_threads": 1, "seed": 3}
    loop.update(train)
    return {
        "defaults": [{"model": str(CONFIGS / "model/tiny.yaml")}, {"data": str(CONFIGS / "data/synthrs.yaml")}],
        "model": {
            "vision": {"config": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                                  "num_attention_heads": 2, "image_size": 64, "patch_size": 16}},
            "llm": {"config": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                               "num_attention_heads": 2, "num_key_value_heads": 2},
                    "tokenizer_vocab_size": 300},
            "grounding": {"image_size": 64, "stem_channels": 8},
            "region": {"crop_size": 32},
            "mask_decoder": {"mask_size": 32},
        },
        "data": {"train": str(synth["train"]), "val": str(synth["val"]), "test": None,
                 "dataset": {"hflip": 0.5},
                 "num_workers": 0, "val_max_samples": 4},
        "schedule": {"warmup_steps": 2},
        "optim": {"lr": 1.0e-3},
        "train": loop,
        "output_dir": str(out),
    }


def write_experiment(path: Path, exp: dict[str, object]) -> Path:
    """Write an experiment dict as YAML."""
    path.write_text(yaml.safe_dump(exp, sort_keys=False))
    return path
