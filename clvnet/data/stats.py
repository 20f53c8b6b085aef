"""Dataset statistics for GCG records (``clvnet data stats``).

:func:`dataset_stats` summarises a list of records: class counts (phrases and instances, from
``meta["classes"]`` when present), the multi-target phrase share, phrases per record, caption length
in words, vocabulary size, hard-mode share and scene types. :func:`format_stats` renders it as text.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from clvnet.data.record import GCGRecord

_WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def _summary(values: list[int]) -> dict[str, float]:
    if not values:
        return {"mean": 0.0, "min": 0.0, "max": 0.0}
    return {"mean": sum(values) / len(values), "min": float(min(values)), "max": float(max(values))}


def dataset_stats(records: list[GCGRecord]) -> dict[str, Any]:
    """Summary statistics of ``records`` (a JSON-serialisable dict).

    Keys: ``records``, ``phrases``, ``instances``, ``multi_target_phrases``, ``multi_target_share``,
    ``phrases_per_record`` / ``caption_words`` / ``instances_per_phrase`` (mean/min/max),
    ``vocab_size``, ``class_phrases`` / ``class_instances`` (only records with ``meta["classes"]``
    contribute), ``hard_share``, ``hard_degradations``, ``scene_types``, ``with_box_share``.
    """
    n_phr: list[int] = []
    words: list[int] = []
    inst: list[int] = []
    vocab: set[str] = set()
    cls_phr: Counter[str] = Counter()
    cls_inst: Counter[str] = Counter()
    hard_kinds: Counter[str] = Counter()
    scenes: Counter[str] = Counter()
    hard = with_box = multi = 0
    for r in records:
        n_phr.append(len(r.phrases))
        toks = _WORD_RE.findall(r.caption.lower())
        words.append(len(r.caption.split()))
        vocab.update(toks)
        inst.extend(len(p.masks) for p in r.phrases)
        multi += sum(1 for p in r.phrases if len(p.masks) > 1)
        classes = r.meta.get("classes")
        if isinstance(classes, list) and len(classes) == len(r.phrases):
            for c, p in zip(classes, r.phrases):
                cls_phr[str(c)] += 1
                cls_inst[str(c)] += len(p.masks)
        h = r.meta.get("hard") or []
        if h:
            hard += 1
            hard_kinds.update(str(x) for x in h)
        if "scene_type" in r.meta:
            scenes[str(r.meta["scene_type"])] += 1
        with_box += r.box is not None
    n = len(records)
    total = sum(n_phr)
    return {
        "records": n, "phrases": total, "instances": sum(inst),
        "multi_target_phrases": multi, "multi_target_share": multi / total if total else 0.0,
        "phrases_per_record": _summary(n_phr), "caption_words": _summary(words),
        "instances_per_phrase": _summary(inst), "vocab_size": len(vocab),
        "class_phrases": dict(cls_phr.most_common()), "class_instances": dict(cls_inst.most_common()),
        "hard_share": hard / n if n else 0.0, "hard_degradations": dict(hard_kinds.most_common()),
        "scene_types": dict(scenes.most_common()), "with_box_share": with_box / n if n else 0.0,
    }


def format_stats(stats: dict[str, Any]) -> str:
    """Human-readable multi-line rendering of :func:`dataset_stats` output."""
    def mmm(d: dict[str, float]) -> str:
        return f"mean {d['mean']:.2f}, min {d['min']:.0f}, max {d['max']:.0f}"

    lines = [
        f"records:              {stats['records']}",
        f"phrases:              {stats['phrases']} ({stats['instances']} instances)",
        f"multi-target phrases: {stats['multi_target_phrases']} ({100 * stats['multi_target_share']:.1f}%)",
        f"phrases per record:   {mmm(stats['phrases_per_record'])}",
        f"instances per phrase: {mmm(stats['instances_per_phrase'])}",
        f"caption words:        {mmm(stats['caption_words'])}",
        f"vocabulary size:      {stats['vocab_size']}",
        f"with box:             {100 * stats['with_box_share']:.1f}%",
        f"hard mode:            {100 * stats['hard_share']:.1f}%",
    ]
    if stats["hard_degradations"]:
        lines.append("  degradations:       " + ", ".join(f"{k} {v}" for k, v in stats["hard_degradations"].items()))
    if stats["scene_types"]:
        lines.append("scene types:          " + ", ".join(f"{k} {v}" for k, v in stats["scene_types"].items()))
    if stats["class_phrases"]:
        lines.append(f"classes ({len(stats['class_phrases'])}):  phrases / instances")
        width = max(len(c) for c in stats["class_phrases"])
        for c, k in stats["class_phrases"].items():
            lines.append(f"  {c:<{width}}  {k:6d} / {stats['class_instances'].get(c, 0)}")
    return "\n".join(lines)
