"""``clvnet ablate``: the paper's ablations (Tables II-V) and the project's own switches, on SynthRS.

    clvnet ablate --suite paper --seeds 3 [--steps N] [--variants NAME,...] [--jobs K] --out runs/ablate

Every variant is an experiment config under ``clvnet/configs/experiments/synthrs_ablation/`` (composing the
quickstart's, which is the full model), trained for ``--steps`` optimiser steps with each seed on SynthRS
generated once under ``OUT/data``, and evaluated on SynthRS-test and SynthRS-hard (twin scenes; the
twin-confusion rate is a column) and any ``--test-split``. Runs that
give the same model are run once (lambda = 0 is "neither loss"; greedy decoding evaluates the full
model's checkpoints). The call is resumable: finished runs are skipped. It writes ``results.json``,
``table.md``, ``table.html`` and ``plot.png`` into ``OUT`` (after every finished run, too).
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

# Sized for the whole paper suite, 3 seeds, in about 2 hours on a 2-core CPU: 12 distinct trainings x 3 seeds
# at about 3 minutes each, set-up and evaluation included (docs/ablations.md, "Sizing").
DEFAULT_STEPS = 300
DEFAULT_NUM_TEST = 200
DEFAULT_NUM_HARD = 100
DEFAULT_NUM_VAL = 32
# Always computed: the twin-confusion rate (lower is better), on every test split.
DEFAULT_METRICS = ("clvnet.ablation.metrics:twin_confusion_rate",)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``ablate`` subcommand."""
    from clvnet.ablation.suite import SUITES

    p = subparsers.add_parser("ablate", help="train and evaluate the ablation suite on SynthRS and tabulate it",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", default="paper", choices=sorted(SUITES), help="the suite of variants")
    p.add_argument("--seeds", type=int, default=3, help="seeds per variant (train.seed 0..N-1; default 3)")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS,
                   help=f"optimiser steps of every run (default {DEFAULT_STEPS})")
    p.add_argument("--variants", default=None,
                   help="comma-separated variant names (default all; `clvnet configs experiments` lists them)")
    p.add_argument("--jobs", type=int, default=1,
                   help="runs at once, each in its own process with cores // jobs torch threads, or "
                        "train.cpu_threads if given (0 = by the load; default 1 job)")
    p.add_argument("--out", default="runs/ablate", help="suite folder (results, tables, runs, data)")
    p.add_argument("--num-train", type=int, default=None,
                   help="SynthRS training scenes (default: the quickstart's rule for --steps, at least 4,000)")
    p.add_argument("--num-val", type=int, default=DEFAULT_NUM_VAL,
                   help=f"SynthRS validation scenes, validated once at the end of each run; 0 = none "
                        f"(default {DEFAULT_NUM_VAL})")
    p.add_argument("--num-test", type=int, default=DEFAULT_NUM_TEST,
                   help=f"SynthRS-test scenes every run is evaluated on (default {DEFAULT_NUM_TEST})")
    p.add_argument("--num-hard", type=int, default=DEFAULT_NUM_HARD,
                   help=f"SynthRS-hard (twin) test scenes every run is also evaluated on; 0 = none "
                        f"(default {DEFAULT_NUM_HARD})")
    p.add_argument("--data-seed", type=int, default=0, help="SynthRS seed (splits stay disjoint)")
    p.add_argument("--test-split", action="append", default=[], metavar="NAME=JSONL",
                   help="another test split to evaluate on (repeatable)")
    p.add_argument("--metric", action="append", default=[], metavar="MODULE:FUNCTION",
                   help="an extra metric (repeatable): FUNCTION(gt records, predicted records) -> {name: value}; "
                        "the twin-confusion rate is always computed")
    p.add_argument("--no-java", action="store_true", help="skip METEOR (no Java needed)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides for every variant")
    p.set_defaults(func=_handler)


HARD = "test-hard"   # the SynthRS-hard split's folder and seed space, as `clvnet data synth --twins` names it


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _extra_split(arg: str) -> tuple[str, Path]:
    name, sep, path = arg.partition("=")
    if not sep or not name or not path:
        raise ValueError(f"--test-split {arg!r} must look like NAME=JSONL")
    if not Path(path).is_file():
        raise FileNotFoundError(f"--test-split {name}: file not found: {path}")
    return name, Path(path).resolve()


def _handler(args: argparse.Namespace) -> int:
    from clvnet.ablation.runner import SuiteRun, TestSplit, run_suite
    from clvnet.ablation.suite import select
    from clvnet.ablation.worker import load_metric
    from clvnet.data.synth import SYNTHRS_VERSION
    from clvnet.quickstart import default_num_train, make_data

    # every argument is checked before any data is generated
    variants = select(args.suite, [n.strip() for n in args.variants.split(",") if n.strip()] if args.variants else None)
    for name, value in (("--seeds", args.seeds), ("--steps", args.steps), ("--jobs", args.jobs),
                        ("--num-test", args.num_test)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    for name, value in (("--num-val", args.num_val), ("--num-hard", args.num_hard)):
        if value < 0:
            raise ValueError(f"{name} must be at least 0, got {value}")
    extra = [_extra_split(a) for a in args.test_split]
    metrics = [*DEFAULT_METRICS, *(m for m in args.metric if m not in DEFAULT_METRICS)]
    for spec in metrics:
        load_metric(spec)
    num_train = args.num_train if args.num_train is not None else default_num_train(args.steps)
    if num_train < 1:
        raise ValueError(f"--num-train must be at least 1, got {num_train}")

    out = Path(args.out)
    sizes = {"train": num_train, "test": args.num_test, **({"val": args.num_val} if args.num_val else {}),
             **({HARD: args.num_hard} if args.num_hard else {})}
    data = make_data(out / "data", sizes, args.data_seed, twin_splits=(HARD,))
    spec = {"seed": args.data_seed, "synthrs": SYNTHRS_VERSION}
    splits = [TestSplit("SynthRS-test", data["test"].resolve(), {**spec, "num": args.num_test, "split": "test"})]
    if args.num_hard:
        splits.append(TestSplit("SynthRS-hard", data[HARD].resolve(),
                                {**spec, "num": args.num_hard, "split": HARD, "twins": True}))
    splits += [TestSplit(name, path, {"sha256": _sha256(path)}) for name, path in extra]
    run = SuiteRun(out=out, variants=variants, seeds=list(range(args.seeds)), steps=args.steps,
                   train_jsonl=data["train"].resolve(), val_jsonl=data["val"].resolve() if "val" in data else None,
                   data_spec={**spec, "train": num_train, "val": args.num_val}, test_splits=splits,
                   suite=args.suite, jobs=args.jobs, overrides=list(args.overrides), metrics=metrics,
                   use_java=not args.no_java)
    results = run_suite(run)
    failed = sum(r["status"] == "failed" for r in results["runs"])
    print(f"results: {out / 'results.json'}\ntable: {out / 'table.md'}\ntable: {out / 'table.html'}\n"
          f"plot: {out / 'plot.png'}\nruns: {len(results['runs'])} (variant, seed) pairs, {failed} failed")
    return 0
