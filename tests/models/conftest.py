"""Shared fixtures for model tests (helpers live in model_fixtures.py)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from model_fixtures import make_batch, micro_config


@pytest.fixture
def batch() -> dict[str, Any]:
    return make_batch()


@pytest.fixture
def tiny_model(batch: dict[str, Any]) -> Any:
    from clvnet.models.builder import build_model

    torch.manual_seed(0)
    return build_model(micro_config(), captions=batch["target"])
