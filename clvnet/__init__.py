"""clvnet: an open implementation of CLV-Net (visual-prompt-guided grounded captioning for remote sensing).

Heavy submodules are imported lazily, so ``import clvnet`` is cheap.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "Predictor":
        from clvnet.inference.predictor import Predictor

        return Predictor
    raise AttributeError(f"module 'clvnet' has no attribute {name!r}")


__all__ = ["Predictor", "__version__"]
