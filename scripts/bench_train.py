"""Training throughput of an experiment: samples/s and time per step split into data, forward, backward, optimiser.

Usage (the quickstart's tiny model, 2 CPU threads)::

    python scripts/bench_train.py --config quickstart --steps 30 --threads 2

``--compare TREE`` times another checkout of clvnet (e.g. ``git archive b773ea1 | tar -x -C /tmp/base``) and this
one alternately, ``--rounds`` times, each run in its own process on the same SynthRS scenes, and prints both
splits and, last, ``speed-up: X.XX×`` (the median samples/s of this tree over that of TREE). TREE runs its own
``scripts/bench_train.py`` with its own quickstart config.

Two measurements:

1. *data*: the time to build one batch (dataset + collate + processor) in the main process,
   i.e. the work the DataLoader workers must hide;
2. *train*: ``--steps`` real optimiser steps of :class:`clvnet.engine.trainer.Trainer` (after
   ``--warmup`` untimed ones), with the trainer's own split: waiting for data, forward, backward,
   optimiser (clipping + AdamW step).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="quickstart", help="experiment YAML or shipped name")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (sets train.cpu_threads)")
    ap.add_argument("--num-train", type=int, default=400, help="SynthRS scenes generated when data.train is missing")
    ap.add_argument("--compare", type=Path, default=None, metavar="TREE", help="another clvnet checkout to time")
    ap.add_argument("--rounds", type=int, default=3, help="--compare: alternations")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    if args.compare is not None:
        compare(args)
    else:
        measure(args)


def _run_tree(tree: Path, config: str, args: argparse.Namespace, data: Path) -> dict[str, Any]:
    """One bench_train run of ``tree`` in its own process; returns its JSON result."""
    import subprocess
    import sys

    cmd = [sys.executable, str(tree / "scripts" / "bench_train.py"), "--config", config, "--steps", str(args.steps),
           "--warmup", str(args.warmup), "--threads", str(args.threads), f"data.train={data}", *args.overrides]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    res = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"bench_train in {tree} failed:\n{res.stderr[-3000:]}")
    return dict(json.loads(res.stdout[res.stdout.index("{"):]))


def compare(args: argparse.Namespace) -> None:
    """Alternate runs of ``args.compare`` and this tree; print both splits and the speed-up."""
    import statistics

    from clvnet.data.synth import generate_split

    tree = args.compare.resolve()
    if not (tree / "clvnet" / "__init__.py").is_file() or not (tree / "scripts" / "bench_train.py").is_file():
        raise SystemExit(f"--compare {tree}: not a clvnet checkout (no clvnet/ or scripts/bench_train.py)")
    old_config = "configs/experiments/quickstart.yaml" if (tree / "configs").is_dir() else args.config
    data = Path(generate_split(Path(tempfile.mkdtemp(prefix="bench_train_data_")), args.num_train, 1, split="train"))
    runs: dict[str, list[dict[str, Any]]] = {"baseline": [], "this tree": []}
    for r in range(args.rounds):
        for name, root, config in (("baseline", tree, old_config), ("this tree", REPO, args.config)):
            res = _run_tree(root, config, args, data)
            runs[name].append(res)
            split = ", ".join(f"{k} {v:.1f}" for k, v in res["per_step_ms"].items())
            print(f"round {r + 1} {name:9s}: {res['samples_per_s']:6.2f} samples/s  per step (ms): {split}", flush=True)
    medians = {name: statistics.median(x["samples_per_s"] for x in rs) for name, rs in runs.items()}
    for name, rs in runs.items():
        split = {k: statistics.median(x["per_step_ms"][k] for x in rs) for k in rs[0]["per_step_ms"]}
        print(f"median {name:9s}: {medians[name]:6.2f} samples/s  per step (ms): "
              + ", ".join(f"{k} {v:.1f}" for k, v in split.items()))
    print(f"baseline: {tree}   load average: {os.getloadavg()}")
    print(f"speed-up: {medians['this tree'] / medians['baseline']:.2f}×")


def measure(args: argparse.Namespace) -> None:
    """Time ``args.steps`` training steps of this tree and print the JSON result."""
    import torch

    from clvnet.config import load_config
    from clvnet.engine.config import TrainConfig
    from clvnet.engine.logging import read_csv
    from clvnet.engine.trainer import Trainer

    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench_train_"))
    overrides = [*args.overrides, f"output_dir={tmp / 'run'}", "train.time_budget_min=null", "train.val_every=0",
                 "train.save_every=0", "train.progress=false", f"train.cpu_threads={args.threads}", "data.val=null",
                 f"train.max_steps={args.steps + args.warmup}", "train.log_every=1"]
    cfg = load_config(TrainConfig, args.config, overrides, section="experiments")
    if not Path(cfg.data.train).is_file():
        from clvnet.data.synth import generate_split

        cfg.data.train = str(generate_split(tmp / "train", args.num_train, 1, split="train"))
    trainer = Trainer(cfg)
    bs = cfg.train.batch_size

    # 1. data cost per batch in the main process
    ds = trainer.train_set
    t0 = time.perf_counter()
    n_batches = 5
    for b in range(n_batches):
        trainer.collate([ds[(b * bs + i) % len(ds)] for i in range(bs)])
    data_ms = (time.perf_counter() - t0) / n_batches * 1000

    # 2. warm-up steps (untimed), then timed steps; the trainer logs the split once at the end
    trainer.fit()
    rows = read_csv(tmp / "run" / "train_log.csv")[args.warmup:]
    n = len(rows)
    wall = rows[-1]["elapsed_s"] - (rows[0]["elapsed_s"] - rows[0]["data_s"] - rows[0]["forward_s"]
                                    - rows[0]["backward_s"] - rows[0]["optim_s"])
    per = {k: sum(r[k] for r in rows) / n * 1000 for k in ("data_s", "forward_s", "backward_s", "optim_s")}
    steps = n
    result = {
        "config": args.config, "threads": args.threads, "batch_size": bs, "precision": trainer.acc.mixed_precision,
        "trainable_params": trainer.n_trainable, "steps": steps, "samples_per_s": round(n * bs * cfg.train.grad_accum / wall, 2),
        "build_batch_ms_main_process": round(data_ms, 1),
        "per_step_ms": {k.removesuffix("_s"): round(v, 1) for k, v in per.items()},
        "load_average": os.getloadavg(),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
