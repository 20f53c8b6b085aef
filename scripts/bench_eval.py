"""Benchmark the GCG evaluator on a deterministic synthetic set and print the time split per metric.

Usage::

    python scripts/bench_eval.py [--images 2000] [--phrases 5] [--size 512] [--seed 0] [--no-java]
                                 [--engine faster|pycocotools] [--text-encoder PATH]

Builds random GT / prediction records (``clvnet.eval.synthetic.make_pair``), runs
``clvnet.eval.evaluate`` once, and prints wall time and process CPU time (this process plus its
finished children, i.e. the Java tokenizer) and, separately, the CPU time of the live METEOR
JVM. The budget for 2,000 images x ~5 phrases is 2 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path


def _cpu() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def _jvm_cpu() -> float | None:
    """CPU seconds used so far by the live METEOR JVM (Linux /proc), or None."""
    from clvnet.eval import captions

    proc = getattr(captions._METEOR, "meteor_p", None)
    try:
        stat = Path(f"/proc/{proc.pid}/stat").read_text()  # type: ignore[union-attr]
        fields = stat.rsplit(")", 1)[1].split()
    except (OSError, AttributeError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--phrases", type=int, default=5)
    p.add_argument("--size", type=int, default=512, help="image side in pixels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-java", action="store_true")
    p.add_argument("--engine", choices=["faster", "pycocotools"], default="faster")
    p.add_argument("--text-encoder", default=None)
    args = p.parse_args(argv)

    from clvnet.eval import evaluate, format_table
    from clvnet.eval.synthetic import make_pair

    t0 = time.perf_counter()
    gt, pred = make_pair(args.images, phrases_per_image=args.phrases, size=args.size, seed=args.seed)
    gen_s = time.perf_counter() - t0
    print(f"built {len(gt)} GT / {len(pred)} prediction records ({args.size}px) in {gen_s:.1f}s", flush=True)

    t1, c1 = time.perf_counter(), _cpu()
    m = evaluate(gt, pred, text_encoder=args.text_encoder, use_java=not args.no_java, engine=args.engine)
    wall, cpu = time.perf_counter() - t1, _cpu() - c1
    print(format_table(m))
    print()
    print("| step | wall s |")
    print("| --- | --- |")
    for k, v in m["timings_s"].items():
        print(f"| {k} | {v:.2f} |")
    print(f"| **total evaluate()** | **{wall:.2f}** |")
    jvm = _jvm_cpu()
    print(f"\nCPU time of evaluate(): {cpu:.1f}s in python + finished child processes, "
          f"{'n/a' if jvm is None else f'{jvm:.1f}s'} in the METEOR JVM "
          f"(cores: {os.cpu_count()}, load avg {os.getloadavg()[0]:.2f})")
    print(f"budget 120 s: {'OK' if wall <= 120 else 'OVER'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
