"""GCG evaluation (GCG_EVAL.md): CIDEr, METEOR, AP50, mIoU and Recall, offline, failing loudly on bad input.

``evaluate`` and ``evaluate_masks`` are imported lazily so ``import clvnet.eval`` stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["evaluate", "evaluate_masks", "export_glamm", "format_table", "twin_confusion"]


def __getattr__(name: str) -> Any:
    if name in ("evaluate", "evaluate_masks", "format_table"):
        from clvnet.eval import evaluator

        return getattr(evaluator, name)
    if name == "export_glamm":
        from clvnet.eval.glamm_io import export_glamm

        return export_glamm
    if name == "twin_confusion":
        from clvnet.eval.twins import twin_confusion

        return twin_confusion
    raise AttributeError(f"module 'clvnet.eval' has no attribute {name!r}")
