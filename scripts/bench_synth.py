"""Benchmark SynthRS generation speed (a benchmark, not a test).

Measures scenes per second on ONE core (BLAS threads pinned to 1) for
1. generation only (``generate_scene``: layout, textures, objects, caption, RLE masks), and
2. generation + PNG writing + JSONL writing (``generate_split``).
Both wall-clock and process-CPU rates are printed; on a shared machine the CPU rate is the
more stable figure. Optionally prints dataset statistics of the generated split.

Usage::

    python scripts/bench_synth.py --num 300 --size 256 [--hard] [--stats]
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402


def main() -> None:
    """Run the benchmark and print the rates."""
    from clvnet.data.record import read_jsonl
    from clvnet.data.stats import dataset_stats, format_stats
    from clvnet.data.synth import generate_scene, generate_split

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--num", type=int, default=300, help="scenes per measurement")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hard", action="store_true", help="hard mode (degradations)")
    ap.add_argument("--stats", action="store_true", help="print dataset statistics of the written split")
    args = ap.parse_args()

    generate_scene(args.seed, 0, args.size, args.hard)  # warm caches (grids, noise bank)
    w0, c0 = time.perf_counter(), time.process_time()
    for i in range(args.num):
        generate_scene(args.seed, i, args.size, args.hard)
    w1, c1 = time.perf_counter(), time.process_time()
    print(f"generation only:        {args.num / (w1 - w0):7.1f} scenes/s wall, "
          f"{args.num / (c1 - c0):7.1f} scenes/s CPU  ({args.num} scenes, {args.size}px, hard={args.hard})")
    with tempfile.TemporaryDirectory() as tmp:
        w0, c0 = time.perf_counter(), time.process_time()
        path = generate_split(Path(tmp), args.num, args.seed, args.size, "train", args.hard)
        w1, c1 = time.perf_counter(), time.process_time()
        print(f"generation + PNG/JSONL: {args.num / (w1 - w0):7.1f} scenes/s wall, "
              f"{args.num / (c1 - c0):7.1f} scenes/s CPU")
        if args.stats:
            print(format_stats(dataset_stats(read_jsonl(path))))


if __name__ == "__main__":
    main()
