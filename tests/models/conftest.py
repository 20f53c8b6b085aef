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
    from clvnet.models.build import build_model

    torch.manual_seed(0)
    return build_model(micro_config(), captions=batch["target"])


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Any:
    """One intra-op thread: on the shared 2-core machine two threads spin-wait and run 10-40x slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
