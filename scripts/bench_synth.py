"""Benchmark SynthRS generation speed (a benchmark, not a test).

Measures scenes per second on ONE core (BLAS threads pinned to 1) for
1. generation only (``generate_scene``: layout, textures, objects, caption, RLE masks), and
2. generation + PNG writing + JSONL writing (``generate_split``).
Both wall-clock and process-CPU rates are printed; on a shared machine the CPU rate is the
more stable figure. Optionally prints dataset statistics of the generated split.

``--baseline DIR`` compares this tree with another source tree (a folder holding a ``clvnet``
package, e.g. ``git archive main clvnet | tar -x -C /tmp/base``): each round runs the baseline and
then this tree, each in a fresh interpreter with the same arguments, and the last line reads
``speed-up: X.XX×`` (median CPU rate of generation + PNG/JSONL, this tree over the baseline).

Usage::

    python scripts/bench_synth.py --num 300 --size 256 [--hard] [--stats]
    python scripts/bench_synth.py --num 400 --baseline /tmp/base [--rounds 3]
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def measure(num: int, size: int, seed: int, hard: bool, stats: bool, png_level: int | None = None,
            workers: int = 1) -> dict[str, float]:
    """Time generation only, then generation + PNG/JSONL; returns the four rates (scenes/s).

    ``png_level`` / ``workers`` go to ``generate_split`` when given (a baseline tree may lack them).
    """
    from clvnet.data.record import read_jsonl
    from clvnet.data.stats import dataset_stats, format_stats
    from clvnet.data.synth import generate_scene, generate_split

    generate_scene(seed, 0, size, hard)  # warm caches (grids, noise bank)
    w0, c0 = time.perf_counter(), time.process_time()
    for i in range(num):
        generate_scene(seed, i, size, hard)
    w1, c1 = time.perf_counter(), time.process_time()
    rates = {"gen_wall": num / (w1 - w0), "gen_cpu": num / (c1 - c0)}
    with tempfile.TemporaryDirectory() as tmp:
        w0, c0 = time.perf_counter(), time.process_time()
        opts = {} if png_level is None else {"png_level": png_level}
        if workers > 1:
            opts["workers"] = workers
        path = generate_split(Path(tmp), num, seed, size, "train", hard, **opts)
        w1, c1 = time.perf_counter(), time.process_time()
        rates.update(split_wall=num / (w1 - w0), split_cpu=num / (c1 - c0))
        if stats:
            print(format_stats(dataset_stats(read_jsonl(path))))
    return rates


def _report(r: dict[str, float], label: str = "") -> None:
    print(f"{label}generation only:        {r['gen_wall']:7.1f} scenes/s wall, {r['gen_cpu']:7.1f} scenes/s CPU")
    print(f"{label}generation + PNG/JSONL: {r['split_wall']:7.1f} scenes/s wall, {r['split_cpu']:7.1f} scenes/s CPU")


def _child(src: Path, args: argparse.Namespace, this_tree: bool) -> dict[str, float]:
    """Run :func:`measure` in a fresh interpreter that imports ``clvnet`` from ``src``."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--num", str(args.num), "--size", str(args.size),
           "--seed", str(args.seed), "--json"] + (["--hard"] if args.hard else [])
    if this_tree and args.png_level is not None:
        cmd += ["--png-level", str(args.png_level)]
    env = dict(os.environ, PYTHONPATH=str(src))
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    res: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return res


def compare(args: argparse.Namespace) -> float:
    """Alternate baseline and this tree for ``args.rounds`` rounds; prints the rates and the speed-up."""
    base = Path(args.baseline).resolve()
    if not (base / "clvnet" / "__init__.py").is_file():
        raise SystemExit(f"--baseline {base}: no clvnet/__init__.py there (pass a source tree)")
    runs: dict[str, list[dict[str, float]]] = {"baseline": [], "this tree": []}
    for r in range(args.rounds):
        for name, src in (("baseline", base), ("this tree", ROOT)):
            runs[name].append(_child(src, args, name == "this tree"))
            _report(runs[name][-1], f"round {r + 1} {name:9s}  ")
    med = {name: {k: statistics.median(x[k] for x in rs) for k in rs[0]} for name, rs in runs.items()}
    for name in runs:
        _report(med[name], f"median  {name:9s}  ")
    gen = med["this tree"]["gen_cpu"] / med["baseline"]["gen_cpu"]
    speed_up = med["this tree"]["split_cpu"] / med["baseline"]["split_cpu"]
    print(f"generation only speed-up: {gen:.2f}×")
    print(f"speed-up: {speed_up:.2f}×")
    return speed_up


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print the rates."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--num", type=int, default=300, help="scenes per measurement")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hard", action="store_true", help="hard mode (degradations)")
    ap.add_argument("--stats", action="store_true", help="print dataset statistics of the written split")
    ap.add_argument("--png-level", type=int, default=None, help="PNG zlib level (default: generate_split's)")
    ap.add_argument("--workers", type=int, default=1, help="generate_split processes (wall-clock rate only)")
    ap.add_argument("--baseline", type=Path, default=None, help="source tree to compare against (see above)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds with --baseline")
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # one JSON line (used by --baseline)
    args = ap.parse_args(argv)
    if args.num < 1 or args.rounds < 1:
        ap.error("--num and --rounds must be >= 1")
    if args.baseline is not None:
        compare(args)
        return
    rates = measure(args.num, args.size, args.seed, args.hard, args.stats, args.png_level, args.workers)
    if args.json:
        print(json.dumps(rates))
        return
    print(f"{args.num} scenes, {args.size}px, hard={args.hard}")
    _report(rates)


if __name__ == "__main__":
    main()
