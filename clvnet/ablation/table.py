"""``table.md``, ``table.html`` and ``plot.png`` from a suite's ``results.json``.

One section per test split, one row per variant: each metric as mean ± std over the seeds that
finished, its difference to the full model with Welch's t (:mod:`clvnet.ablation.stats`), and the
paper's difference for the same row (:mod:`clvnet.ablation.paper`).
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clvnet.ablation.paper import METRICS, TABLES
from clvnet.ablation.stats import Comparison, Summary, summarize, welch

FULL = "full"
LEGEND = (
    "Each metric: mean ± sample standard deviation over the seeds evaluated on the split ('seeds': evaluated "
    "/ asked). "
    "Δ (t): the variant's mean minus the full model's, with Welch's t in brackets; * marks |t| above the "
    "two-sided 5% critical value of Student's t at the Welch-Satterthwaite degrees of freedom (rounded down), "
    "i.e. a difference larger than the seed spread. 'Beyond the spread' lists those metrics, ↓ where the "
    "variant scores lower (for CIDEr, METEOR, AP50, mIoU and Recall: the full model beats the ablation) and "
    "↑ where it scores higher (for the twin-confusion rate, in percent, lower is better). Paper Δ: the same row's difference to the full model in the paper's table "
    "(GeoPixelD, 7B model), n/a where the paper has no such row or metric.")


@dataclass
class Cell:
    """One variant's figures for one metric on one split."""

    summary: Summary | None
    comparison: Comparison | None
    paper: float | None


@dataclass
class Row:
    """One variant on one split."""

    name: str
    label: str
    finished: int
    asked: int
    cells: dict[str, Cell] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def beyond(self) -> str:
        """Metrics whose difference exceeds the seed spread, with the variant's direction."""
        return ", ".join(f"{m}{'↓' if c.comparison.diff < 0 else '↑'}" for m, c in self.cells.items()
                         if c.comparison is not None and c.comparison.beyond_spread)


def metric_names(results: dict[str, Any]) -> list[str]:
    """The five GCG metrics, then every extra metric the runs report (in first-seen order)."""
    names = list(METRICS)
    for run in results["runs"]:
        for name in run.get("extra_names", []):
            if name not in names:
                names.append(name)
    return names


def _values(results: dict[str, Any], variant: str, split: str, metric: str) -> list[float]:
    out = []
    for run in results["runs"]:
        if run["variant"] == variant:
            v = run["metrics"].get(split, {}).get(metric)
            if isinstance(v, (int, float)) and math.isfinite(v):
                out.append(float(v))
    return out


def _short(text: str, limit: int = 240) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "… (full text in results.json)"


def build_rows(results: dict[str, Any], split: str) -> list[Row]:
    """The table's rows for ``split``."""
    names = metric_names(results)
    seeds = len(results["seeds"])
    labels = {v["name"]: v["label"] for v in results["variants"]}
    full_ok = any(v["name"] == FULL for v in results["variants"])
    rows = []
    for v in results["variants"]:
        runs = [r for r in results["runs"] if r["variant"] == v["name"]]
        row = Row(v["name"], v["label"], sum(split in r["metrics"] for r in runs), seeds)
        paper = v.get("paper_difference") or {}
        for m in names:
            s = summarize(_values(results, v["name"], split, m))
            f = summarize(_values(results, FULL, split, m)) if full_ok else None
            comp = welch(s, f) if s is not None and f is not None and v["name"] != FULL else None
            row.cells[m] = Cell(s, comp, paper.get(m))
        if v.get("same_as"):
            row.notes.append("same run as " + ", ".join(labels.get(n, n) for n in v["same_as"]))
        if v.get("trained_by") and v["trained_by"] != v["name"] and v["trained_by"] not in v.get("same_as", []):
            row.notes.append(f"evaluates the checkpoints of {labels.get(v['trained_by'], v['trained_by'])}")
        errors: dict[str, list[int]] = {}
        for r in runs:
            if r["status"] == "failed":
                errors.setdefault(r.get("error") or "unknown error", []).append(r["seed"])
        for err, failed_seeds in errors.items():
            row.notes.append(f"failed (seed {', '.join(map(str, failed_seeds))}): {_short(err)}")
        pending = [r["seed"] for r in runs if r["status"] == "pending"]
        if pending:
            row.notes.append(f"not run yet (seed {', '.join(map(str, pending))})")
        rows.append(row)
    return rows


def _fmt_summary(s: Summary | None) -> str:
    if s is None:
        return "—"
    return f"{s.mean:.1f}" if s.std is None else f"{s.mean:.1f} ± {s.std:.1f}"


def _fmt_comp(c: Comparison | None) -> str:
    if c is None:
        return "—"
    if c.t is None:
        return f"{c.diff:+.1f}"
    t = "inf" if math.isinf(c.t) else f"{c.t:+.1f}"
    return f"{c.diff:+.1f} ({t}){'*' if c.beyond_spread else ''}"


def _fmt_paper(row: Row, cell: Cell) -> str:
    if row.name == FULL:
        return "—"
    return "n/a" if cell.paper is None else f"{cell.paper:+.1f}"


def _header(names: list[str]) -> list[str]:
    cols = ["variant", "seeds"]
    for m in names:
        cols += [m, f"{m} Δ (t)", f"{m} paper Δ"]
    return [*cols, "beyond the spread", "notes"]


def _cells(row: Row, names: list[str]) -> list[str]:
    out = [row.label, f"{row.finished}/{row.asked}"]
    for m in names:
        c = row.cells[m]
        out += [_fmt_summary(c.summary), _fmt_comp(c.comparison), _fmt_paper(row, c)]
    return [*out, row.beyond() or "—", "; ".join(row.notes)]


def _paper_sources(results: dict[str, Any]) -> list[str]:
    used = sorted({v["paper"][0] for v in results["variants"] if v.get("paper")}, key=list(TABLES).index)
    return [TABLES[t].title for t in used]


def _facts(results: dict[str, Any]) -> list[str]:
    m = results.get("machine", {})
    return [f"suite: {results['suite']}; {results['steps']} optimiser steps a run; seeds {results['seeds']}",
            f"training data: {results.get('data', {})}",
            f"machine: {m.get('cpu', '?')}, {m.get('cores', '?')} cores, {results.get('jobs', 1)} job(s) at "
            f"{results.get('threads', '?')} torch thread(s); load average {m.get('load_start', '?')} at the start, "
            f"{m.get('load_end', '?')} at the end"]


def write_markdown(results: dict[str, Any], path: Path) -> Path:
    """``table.md``."""
    names = metric_names(results)
    lines = [f"# Ablations on SynthRS ({results['suite']} suite)", ""]
    for split in results["test_splits"]:
        lines += [f"## {split['name']} ({split.get('n_scenes', '?')} scenes)", ""]
        head = _header(names)
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in build_rows(results, split["name"]):
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in _cells(row, names)) + " |")
        lines.append("")
    lines += ["Legend: " + LEGEND, "", "Paper tables: " + "; ".join(_paper_sources(results)) + ".", ""]
    lines += ["## Runs", "", "Training loop: the optimiser steps alone; training stage: with the model's construction "
              "and the final checkpoint; evaluation: every test split.", "",
              "| variant | seed | status | steps | training loop (s) | samples/s | training stage (s) | evaluation (s) |",
              "|---|---|---|---|---|---|---|---|"]
    for r in results["runs"]:
        ev = round(sum(r["eval_wall_s"].values()), 1) if r.get("eval_wall_s") else None
        cells = [r.get(k) for k in ("steps", "train_wall_s", "samples_per_s", "stage_wall_s")] + [ev]
        lines.append(f"| {r['variant']} | {r['seed']} | {r['status']} | "
                     + " | ".join("—" if c is None else str(c) for c in cells) + " |")
    lines += ["", *[f"- {f}" for f in _facts(results)], "", "![ablation plot](plot.png)", ""]
    path.write_text("\n".join(lines))
    return path


def write_html(results: dict[str, Any], path: Path) -> Path:
    """``table.html`` (the same tables, the legend and the plot)."""
    e = html.escape
    names = metric_names(results)
    parts = [f"<h1>Ablations on SynthRS ({e(results['suite'])} suite)</h1>"]
    for split in results["test_splits"]:
        parts.append(f"<h2>{e(split['name'])} ({e(str(split.get('n_scenes', '?')))} scenes)</h2>")
        head = "".join(f"<th>{e(h)}</th>" for h in _header(names))
        body = ""
        for row in build_rows(results, split["name"]):
            cls = ' class="full"' if row.name == FULL else (' class="failed"' if row.finished == 0 else "")
            body += f"<tr{cls}>" + "".join(f"<td>{e(c)}</td>" for c in _cells(row, names)) + "</tr>"
        parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    parts.append(f"<p>Legend: {e(LEGEND)}</p><p>Paper tables: {e('; '.join(_paper_sources(results)))}.</p>")
    parts.append("<ul>" + "".join(f"<li>{e(f)}</li>" for f in _facts(results)) + "</ul>")
    parts.append('<img src="plot.png" alt="ablation plot" style="max-width:100%">')
    path.write_text(f"""<!doctype html>
<html><head><meta charset="utf-8"><title>clvnet ablations</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}}td:first-child,td:last-child{{text-align:left}}
tr.full{{background:#eef6ee}}tr.failed{{background:#fbeaea}}</style></head><body>
{''.join(parts)}
</body></html>
""")
    return path


def write_plot(results: dict[str, Any], path: Path) -> Path:
    """``plot.png``: per split (rows) and metric (columns), the variants as bars with their seed std."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = metric_names(results)
    splits = results["test_splits"]
    variants = results["variants"]
    fig, axes = plt.subplots(len(splits), len(names), squeeze=False,
                             figsize=(3.2 * len(names), 0.32 * len(variants) * len(splits) + 1.5 * len(splits)))
    for i, split in enumerate(splits):
        rows = build_rows(results, split["name"])
        for j, m in enumerate(names):
            ax = axes[i][j]
            ys = list(range(len(rows)))[::-1]
            sums = [r.cells[m].summary for r in rows]
            means = [0.0 if s is None else s.mean for s in sums]
            errs = [0.0 if s is None or s.std is None else s.std for s in sums]
            colors = ["tab:green" if r.name == FULL else ("lightgray" if s is None else "tab:blue")
                      for r, s in zip(rows, sums)]
            ax.barh(ys, means, xerr=errs, color=colors, capsize=2)
            full = next((s for r, s in zip(rows, sums) if r.name == FULL and s is not None), None)
            if full is not None:
                ax.axvline(full.mean, color="tab:green", lw=0.8, ls="--")
            ax.set_yticks(ys)
            ax.set_yticklabels([r.label + ("" if s else " (no result)") for r, s in zip(rows, sums)]
                               if j == 0 else [], fontsize=8)
            ax.set_title(f"{m} ({split['name']})", fontsize=9)
            ax.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_tables(results: dict[str, Any], out: Path) -> list[Path]:
    """Write ``table.md``, ``table.html`` and ``plot.png`` into ``out``."""
    return [write_markdown(results, out / "table.md"), write_html(results, out / "table.html"),
            write_plot(results, out / "plot.png")]
