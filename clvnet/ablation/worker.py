"""One ablation job in its own process: train one (training key, seed) and evaluate it.

:mod:`clvnet.ablation.runner` starts :func:`child_main` in a process forked from a server that has
already imported :data:`PRELOAD` (so a run does not pay the imports again); ``python -m
clvnet.ablation.worker JOB.json`` runs a job by hand. The job names
the resolved training config, the decoding settings to evaluate (one per evaluation key sharing this
training) and the test splits. Every result is a JSON file written atomically as soon as it exists:

* ``train.json``: ``status`` (``ok`` / ``failed``), ``error``, ``steps``, ``max_steps``, ``train_wall_s``
  (the training loop), ``samples_per_s``, ``checkpoint``;
* one file per (decoding, split): ``status``, ``error``, ``metrics`` (the GCG metrics and the extra ones;
  the names of their numeric values, the table's extra columns, in ``extra_names``), ``eval_wall_s``,
  ``n_scenes``, with the predictions beside it
  (``*.preds.jsonl``).

A finished training is not repeated (its checkpoint is reused for new decodings or splits); a failed one
starts over; an interrupted one (SIGINT / SIGTERM: the trainer saves a checkpoint) resumes.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clvnet.ablation.store import is_ok, read_json, write_json

log = logging.getLogger("clvnet.ablate")
# What every run imports: loaded once into the fork server (a module that fails to import is skipped).
PRELOAD: tuple[str, ...] = (
    "torch", "clvnet.engine.trainer", "clvnet.models.build", "clvnet.models.generation", "clvnet.quickstart",
    "clvnet.eval.evaluator", "clvnet.eval.twins", "clvnet.data.dataset", "transformers.models.clip.modeling_clip",
    "transformers.models.llama.modeling_llama", "transformers.models.sam2.modeling_sam2",
    "transformers.models.sam.modeling_sam", "transformers.models.bert.modeling_bert",
    "transformers.models.auto.modeling_auto", "transformers.models.auto.tokenization_auto")
MetricFn = Callable[[list[Any], list[Any]], dict[str, float]]


def load_metric(spec: str) -> MetricFn:
    """The function named ``module:function``; it maps ``(gt records, predicted records)`` to ``{name: value}``
    (numbers or ``None`` become table columns; other values are only kept in the results).

    Raises:
        ValueError: ``spec`` is not ``module:function`` or names nothing callable.
    """
    module, sep, name = spec.partition(":")
    if not sep or not module or not name:
        raise ValueError(f"metric {spec!r} must look like module:function")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"metric {spec!r}: {exc}") from exc
    if not callable(fn):
        raise ValueError(f"metric {spec!r} is not callable")
    return fn  # type: ignore[no-any-return]


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def train_once(job: dict[str, Any]) -> dict[str, Any]:
    """Train the job's config unless ``train.json`` already says ``ok``; returns ``train.json``'s content."""
    from clvnet.config import from_dict
    from clvnet.engine.config import TrainConfig
    from clvnet.engine.trainer import Trainer

    run = Path(job["run_dir"])
    done = read_json(run / "train.json")
    cfg = from_dict(TrainConfig, job["config"])
    if isinstance(done, dict) and done.get("status") == "ok" and Path(done["checkpoint"]).is_dir():
        return done
    if isinstance(done, dict):           # failed before: start over, not from its last checkpoint
        shutil.rmtree(cfg.output_dir, ignore_errors=True)
    t0 = time.perf_counter()
    try:
        trainer = Trainer(cfg, resume="auto")
        ckpt = trainer.fit()
    except Exception as exc:
        traceback.print_exc()
        failed = {"status": "failed", "error": _error(exc)}
        write_json(run / "train.json", failed)
        return failed
    if trainer.stopped_by_signal is not None:
        raise KeyboardInterrupt          # neither ok nor failed: the next call resumes it
    t = cfg.train
    samples = trainer.state.step * t.batch_size * t.grad_accum
    result = {"status": "ok", "error": None, "steps": trainer.state.step, "max_steps": t.max_steps,
              "time_capped": trainer.stopped_by_time_cap, "train_wall_s": round(trainer.state.elapsed, 2),
              "stage_wall_s": round(time.perf_counter() - t0, 2),
              "samples_per_s": round(samples / max(trainer.state.elapsed, 1e-9), 2),
              "torch_threads": trainer.threads, "checkpoint": str(ckpt)}
    write_json(run / "train.json", result)
    return result


def evaluate_all(job: dict[str, Any], checkpoint: Path) -> None:
    """Evaluate ``checkpoint`` with each of the job's decodings on each split not yet done."""
    import torch

    from clvnet.config import from_dict
    from clvnet.data.record import write_jsonl
    from clvnet.engine.config import TrainConfig
    from clvnet.models import from_pretrained
    from clvnet.models.config import GenerationConfig
    from clvnet.quickstart import predict_records, score

    if int(job["threads"]) > 0:
        torch.set_num_threads(int(job["threads"]))
    else:
        from clvnet.engine.runtime import auto_threads

        torch.set_num_threads(auto_threads())
    cfg = from_dict(TrainConfig, job["config"])
    for ev in job["evals"]:
        todo = [s for s in ev["splits"] if not is_ok(Path(s["file"]))]
        if not todo:
            continue
        try:
            model = from_pretrained(checkpoint, device="cpu")
            model.cfg.generation = from_dict(GenerationConfig, ev["generation"])
            metric_fns = [(spec, load_metric(spec)) for spec in job["metrics"]]
        except Exception as exc:
            traceback.print_exc()
            for s in todo:
                write_json(Path(s["file"]), {"status": "failed", "error": _error(exc), "split": s["name"]})
            continue
        for s in todo:
            out = Path(s["file"])
            t0 = time.perf_counter()
            try:
                gts, preds = predict_records(model, Path(s["jsonl"]), cfg)
                metrics = score(gts, preds, bool(job["use_java"]))
                extra_names: list[str] = []
                for spec, fn in metric_fns:
                    extra = fn(gts, preds)
                    if not isinstance(extra, dict):
                        raise TypeError(f"metric {spec} returned {type(extra).__name__}, not a dict")
                    metrics.update(extra)
                    extra_names += [k for k, v in extra.items() if k not in extra_names
                                    and (v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)))]
                write_jsonl(preds, out.with_suffix(".preds.jsonl"))
            except Exception as exc:
                traceback.print_exc()
                write_json(out, {"status": "failed", "error": _error(exc), "split": s["name"]})
                continue
            write_json(out, {"status": "ok", "error": None, "split": s["name"], "metrics": metrics,
                             "extra_names": extra_names, "eval_wall_s": round(time.perf_counter() - t0, 2),
                             "n_scenes": len(gts), "generation": ev["generation"]})


def run_job(job: dict[str, Any]) -> int:
    """Train (if needed) and evaluate one job; returns 0, or 1 when the training failed."""
    trained = train_once(job)
    if trained["status"] != "ok":
        for ev in job["evals"]:
            for s in ev["splits"]:
                write_json(Path(s["file"]), {"status": "failed", "split": s["name"],
                                             "error": f"training failed: {trained['error']}"})
        return 1
    evaluate_all(job, Path(trained["checkpoint"]))
    return 0


def _run_file(job_path: str) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    job = json.loads(Path(job_path).read_text())
    try:
        return run_job(job)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def child_main(job_path: str, log_path: str) -> None:
    """Entry point of a worker process: stdout and stderr go to ``log_path``; exits with the job's code."""
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    sys.exit(_run_file(job_path))


def main(argv: list[str] | None = None) -> int:
    """``python -m clvnet.ablation.worker JOB.json``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m clvnet.ablation.worker JOB.json", file=sys.stderr)
        return 2
    return _run_file(args[0])


if __name__ == "__main__":
    sys.exit(main())
