"""Archive-run figures, each measured in one run of this script with a tiny random model (nothing downloaded).

1. ``--grid`` over a folder of tiled scenes: boxes/s with 1 process against ``torchrun`` with 2 processes
   (1 process with ``--threads`` torch threads, each of the 2 ranks with ``threads // 2``, at least 1).
2. The same job (1 process) with the feature cache off (``--feature-cache 0``) against on (default).
3. Peak RSS of a whole ``clvnet predict`` process at each of ``--rss-boxes`` boxes (``--boxes`` JSONL, boxes
   spread over the same scenes), read with ``os.wait4`` for that process alone.

boxes/s is the number of boxes over the slowest rank's prediction loop (printed by each rank), so that
process start and model loading are left out; the command's wall time is reported too. Each pair runs
``--rounds`` times, alternately, and the ratio is given per round and as the median. Example::

    python scripts/bench_archive.py --scenes 20 --size 2048 --grid 512 --rss-boxes 100,1000 --rounds 2 --out bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RATE_RE = re.compile(r"predict rank (\d+): (\d+) box\(es\) on \d+ raster\(s\) in ([0-9.]+) s")
REPO = Path(__file__).resolve().parents[1]


def tiny_checkpoint(out: Path) -> Path:
    """A random tiny-preset CLV-Net saved as a checkpoint folder."""
    import torch

    from clvnet.models.build import build_model, save_pretrained
    from clvnet.models.config import CLVNetConfig

    torch.manual_seed(0)
    save_pretrained(build_model(CLVNetConfig()), out)
    return out


def run(cmd: list[str], threads: int) -> dict[str, Any]:
    """Run ``cmd``; its wall time, peak RSS (GiB, this process tree's largest) and the ranks' box rates."""
    out = Path(cmd[cmd.index("--out") + 1])
    if out.exists():  # a finished earlier run would be resumed, i.e. skipped
        shutil.rmtree(out)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(REPO)}
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        err.seek(0)
        text = err.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{text[-3000:]}")
    ranks = [(int(n), float(s)) for _, n, s in RATE_RE.findall(text)]
    boxes = sum(n for n, _ in ranks)
    slowest = max(s for _, s in ranks)
    return {"boxes": boxes, "loop_s": round(slowest, 2), "boxes_per_s": round(boxes / slowest, 3),
            "wall_s": round(wall, 2), "peak_rss_gib": round(usage.ru_maxrss / 2**20, 3)}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenes", type=int, default=20)
    p.add_argument("--size", type=int, default=2048)
    p.add_argument("--grid", type=int, default=512)
    p.add_argument("--rss-boxes", default="100,1000", help="box counts of the peak-RSS runs ('' = skip)")
    p.add_argument("--rss-box-size", type=int, default=256, help="side of each box of the RSS runs (px)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads of a 1-process run (the 2-rank run gets half each, at least 1)")
    p.add_argument("--rounds", type=int, default=1, help="alternating repeats of each pair of runs")
    p.add_argument("--new-tokens", type=int, default=16)
    p.add_argument("--parts", default="procs,cache,rss", help="figures to measure: procs, cache, rss")
    p.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    p.add_argument("--out", type=Path, default=None, help="write the figures here as JSON")
    args = p.parse_args(argv)

    work = args.work or Path(tempfile.mkdtemp(prefix="bench_archive_"))
    scenes = work / "scenes"
    if not scenes.is_dir():
        subprocess.run([sys.executable, str(REPO / "scripts" / "make_tiled_folder.py"), str(scenes),
                        "--count", str(args.scenes), "--size", str(args.size)], check=True, stdout=subprocess.DEVNULL)
    ckpt = work / "tiny"
    if not (ckpt / "model.safetensors").is_file():
        tiny_checkpoint(ckpt)
    base = ["predict", "--images", str(scenes), "--checkpoint", str(ckpt), "--device", "cpu",
            "--max-new-tokens", str(args.new_tokens)]
    clv = [sys.executable, "-m", "clvnet"]
    res: dict[str, Any] = {"scenes": args.scenes, "size": args.size, "grid": args.grid, "threads": args.threads,
                           "new_tokens": args.new_tokens, "loadavg_before": Path("/proc/loadavg").read_text().split()[:3]}
    grid = [*base, "--grid", str(args.grid)]
    todo = {t.strip() for t in args.parts.split(",") if t.strip()}
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
              str(free_port()), "-m", "clvnet"]
    pairs = []
    if "procs" in todo:
        pairs.append(("one_process", [*clv, *grid], args.threads, "two_processes", [*launch, *grid],
                      max(1, args.threads // 2), "two_over_one"))
    if "cache" in todo:
        pairs.append(("cache_off", [*clv, *grid, "--feature-cache", "0"], args.threads, "cache_on", [*clv, *grid],
                      args.threads, "cache_on_over_off"))
    for name_a, cmd_a, thr_a, name_b, cmd_b, thr_b, ratio in pairs:
        runs_a, runs_b = [], []
        for r in range(args.rounds):  # alternate, so that a change in the machine's load hits both sides
            runs_a.append(run([*cmd_a, "--out", str(work / f"{name_a}{r}")], thr_a))
            runs_b.append(run([*cmd_b, "--out", str(work / f"{name_b}{r}")], thr_b))
        res[name_a], res[name_b] = runs_a, runs_b
        ratios = [b["boxes_per_s"] / a["boxes_per_s"] for a, b in zip(runs_a, runs_b)]
        res[ratio] = {"per_round": [round(x, 3) for x in ratios], "median": round(statistics.median(ratios), 3)}
    for n in [int(v) for v in args.rss_boxes.split(",") if v.strip() and "rss" in todo]:
        boxes = write_boxes(work / f"boxes_{n}.jsonl", sorted(scenes.glob("*.tif")), n, args.size, args.rss_box_size)
        res[f"rss_{n}_boxes"] = run([*clv, *base, "--boxes", str(boxes), "--format", "gpkg",
                                     "--out", str(work / f"rss{n}")], args.threads)
    res["loadavg_after"] = Path("/proc/loadavg").read_text().split()[:3]
    text = json.dumps(res, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_boxes(path: Path, scenes: list[Path], n: int, size: int, box: int) -> Path:
    """``n`` boxes of ``box`` px as a boxes JSONL, dealt over ``scenes`` in turn, each on a new grid cell."""
    per_row = max(1, size // box)
    lines = []
    for k in range(n):
        cell = k // len(scenes)
        x0, y0 = (cell % per_row) * box, ((cell // per_row) % per_row) * box
        lines.append(json.dumps({"image": scenes[k % len(scenes)].name, "box": [x0, y0, x0 + box, y0 + box],
                                 "id": f"b{k:06d}"}))
    path.write_text("\n".join(lines) + "\n")
    return path


if __name__ == "__main__":
    raise SystemExit(main())
