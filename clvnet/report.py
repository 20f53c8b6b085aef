"""The quickstart report: ``report.md``, ``report.html`` and ``loss_curves.png`` in a run folder."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOSS_TERMS = ("total", "caption", "mask_bce", "mask_dice", "csc", "rec")


@dataclass
class Scene:
    """One prediction shown in the report: an overlay PNG (relative to the report) and its caption HTML."""

    id: str
    overlay: str
    caption_html: str
    gt_caption: str = ""
    caption: str = ""


@dataclass
class Report:
    """What the report shows.

    Attributes:
        title: heading.
        metrics: ``{row name: {metric: value}}``, e.g. ``{"tiny": {...}, "baseline": {...}}``.
        metric_names: column order of the table.
        checkpoint: checkpoint folder path.
        scenes: prediction overlays.
        facts: extra ``name: value`` lines (timings, sizes, machine).
        notes: free text paragraphs (Markdown).
        details: an extra Markdown block (e.g. the evaluator's per-group table).
    """

    title: str
    metrics: dict[str, dict[str, float]]
    metric_names: Sequence[str]
    checkpoint: str
    scenes: list[Scene] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    details: str = ""


def plot_losses(train_csv: Path, val_csv: Path | None, out_png: Path) -> Path:
    """Loss curves (every term) and validation mIoU / AP50 against the step, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from clvnet.engine.logging import read_csv

    rows = read_csv(train_csv) if train_csv.is_file() else []
    vrows = read_csv(val_csv) if val_csv is not None and val_csv.is_file() else []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    for k in LOSS_TERMS:
        pts = [(r["step"], r[k]) for r in rows if k in r]
        if pts:
            ax.plot(*zip(*pts), label=k, lw=2 if k == "total" else 1)
    vl = [(r["step"], r["loss"]) for r in vrows if "loss" in r]
    if vl:
        ax.plot(*zip(*vl), "k--o", ms=3, label="val total")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.set_title("training losses")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    ax = axes[1]
    for k in ("miou", "ap50"):
        pts = [(r["step"], r[k]) for r in vrows if k in r]
        if pts:
            ax.plot(*zip(*pts), "-o", ms=3, label=f"val {k} (teacher-forced)")
    ax.set_xlabel("step")
    ax.set_ylabel("%")
    ax.set_title("validation")
    if vrows:
        ax.legend(fontsize=8)
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return out_png


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    return f"{v:.1f}" if isinstance(v, float) else str(v)


def markdown_table(metrics: dict[str, dict[str, float]], names: Sequence[str]) -> str:
    """A Markdown table, one row per model."""
    lines = ["| model | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for row, m in metrics.items():
        lines.append(f"| {row} | " + " | ".join(_fmt(m.get(n)) for n in names) + " |")
    return "\n".join(lines)


def write_report(out_dir: Path, rep: Report, loss_png: str = "loss_curves.png") -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` into ``out_dir``; returns both paths."""
    md = [f"# {rep.title}", "", "## Metrics (SynthRS-test)", "", markdown_table(rep.metrics, rep.metric_names), ""]
    md += [f"Checkpoint: `{rep.checkpoint}`", ""]
    if rep.details:
        md += ["## Details", "", rep.details, ""]
    if rep.facts:
        md += ["## Run", ""] + [f"- {k}: {_fmt(v)}" for k, v in rep.facts.items()] + [""]
    md += ["## Loss curves", "", f"![loss curves]({loss_png})", ""]
    if rep.scenes:
        md += ["## Predictions on test scenes", ""]
        for s in rep.scenes:
            md += [f"### {s.id}", "", f"![{s.id}]({s.overlay})", ""]
            if s.caption:
                md += [f"Prediction: {s.caption}", ""]
            if s.gt_caption:
                md += [f"Ground truth: {s.gt_caption}", ""]
    if rep.notes:
        md += ["## Notes", ""] + [n + "\n" for n in rep.notes]
    md_path = out_dir / "report.md"
    md_path.write_text("\n".join(md))

    e = html.escape
    rows = "".join(
        f"<tr><th>{e(name)}</th>" + "".join(f"<td>{_fmt(m.get(n))}</td>" for n in rep.metric_names) + "</tr>"
        for name, m in rep.metrics.items())
    table = ("<table><thead><tr><th>model</th>" + "".join(f"<th>{e(n)}</th>" for n in rep.metric_names)
             + f"</tr></thead><tbody>{rows}</tbody></table>")
    facts = "".join(f"<li>{e(str(k))}: {e(_fmt(v))}</li>" for k, v in rep.facts.items())
    scenes = "".join(
        f'<figure><img src="{e(s.overlay)}" alt="{e(s.id)}"><figcaption><b>{e(s.id)}</b><br>'
        f"{s.caption_html}<br><small>ground truth: {e(s.gt_caption)}</small></figcaption></figure>"
        for s in rep.scenes)
    notes = "".join(f"<p>{e(n)}</p>" for n in rep.notes)
    details = f"<h2>Details</h2><pre>{e(rep.details)}</pre>" if rep.details else ""
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{e(rep.title)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}figure{{display:inline-block;width:48%;
vertical-align:top;margin:0 1% 1em 0}}figure img{{width:100%}}</style></head><body>
<h1>{e(rep.title)}</h1><h2>Metrics (SynthRS-test)</h2>{table}
<p>Checkpoint: <code>{e(rep.checkpoint)}</code></p>{details}<h2>Run</h2><ul>{facts}</ul>
<h2>Loss curves</h2><img src="{e(loss_png)}" alt="loss curves" style="max-width:100%">
<h2>Predictions on test scenes</h2>{scenes}{('<h2>Notes</h2>' + notes) if notes else ''}
</body></html>
"""
    html_path = out_dir / "report.html"
    html_path.write_text(page)
    return md_path, html_path
