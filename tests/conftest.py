"""Suite-wide test settings."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> None:
    """Tiny models run fastest on one intra-op thread; two threads spin-wait on a busy 2-core machine."""
    import torch

    torch.set_num_threads(1)
