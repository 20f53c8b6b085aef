"""Fixtures of the engine tests: a few SynthRS scenes and a small experiment YAML."""

from __future__ import annotations

from pathlib import Path

import pytest
from enginehelpers import small_experiment, write_experiment


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """12 training and 4 validation SynthRS scenes."""
    from clvnet.data.synth import generate_split

    root = tmp_path_factory.mktemp("synthrs")
    return {"train": generate_split(root / "train", 12, 0, split="train"),
            "val": generate_split(root / "val", 4, 0, split="val")}


@pytest.fixture
def experiment(synth_data: dict[str, Path], tmp_path: Path) -> Path:
    """Path of a small experiment YAML whose run folder is ``tmp_path/run``."""
    return write_experiment(tmp_path / "exp.yaml", small_experiment(synth_data, tmp_path / "run"))
