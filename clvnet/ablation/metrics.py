"""Extra metrics of the ablation table, in the runner's protocol: ``fn(gt records, predicted records)``
returns ``{name: value}``; numbers (or ``None``) become columns, other values are kept in ``results.json``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from clvnet.data.record import GCGRecord


def twin_confusion_rate(gts: Sequence[GCGRecord], preds: Sequence[GCGRecord]) -> dict[str, Any]:
    """The twin-confusion rate (:func:`clvnet.eval.twins.twin_confusion`) in percent, lower is better.

    ``twin confusion``: among the generated phrases whose mask matches a twin-class object (car / boat,
    storage tank / roundabout) and that name exactly one class of its pair, the share naming the twin
    (``None`` when no phrase qualifies); ``twin_confusion`` keeps the evaluator's full counts.
    """
    from clvnet.eval.twins import twin_confusion

    got = twin_confusion(gts, preds)
    rate = got["rate"]
    return {"twin confusion": None if rate is None else 100.0 * rate, "twin_confusion": got}
