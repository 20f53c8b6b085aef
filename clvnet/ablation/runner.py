"""Run an ablation suite: plan the runs, train and evaluate each in its own process, collect, tabulate.

Folder layout under ``out``::

    data/{train,val,test}/            SynthRS, generated once (clvnet.quickstart.make_data) and shared
    runs/<variant>-<training key>/seed<k>/
        job.json  log.txt             what the worker was asked, and its console
        train/                        the trainer's run folder (checkpoint, logs)
        train.json                    the training result (clvnet.ablation.worker)
        eval-<eval key>-<split>-<split key>.json (+ .preds.jsonl)
    results.json  table.md  table.html  plot.png

Resuming: a job whose training and evaluations are all ``ok`` is skipped; a failed one is tried again; a
finished training is reused when only an evaluation is missing (a new decoding variant or test split).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import time
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from clvnet.ablation.paper import paper_difference
from clvnet.ablation.store import is_ok, read_json, write_json
from clvnet.ablation.suite import PlannedVariant, Variant, digest, plan
from clvnet.ablation.table import write_tables
from clvnet.ablation.worker import PRELOAD, child_main, load_metric
from clvnet.config import to_dict

log = logging.getLogger("clvnet.ablate")


@dataclass(frozen=True)
class TestSplit:
    """A test split: its name in the table, its JSONL, and what identifies its content."""

    name: str
    jsonl: Path
    spec: dict[str, Any]


@dataclass
class SuiteRun:
    """Everything one ``clvnet ablate`` call needs.

    Attributes:
        out: the suite folder.
        variants: the rows, in order.
        seeds: training seeds (``train.seed``); every variant runs each.
        steps: optimiser steps of every run.
        train_jsonl / val_jsonl: the shared training and validation data (``val_jsonl`` may be ``None``).
        data_spec: what identifies that data (part of every training key).
        test_splits: where every run is evaluated.
        suite: the suite's name (for the table).
        jobs: runs at once, each in its own process with ``cores // jobs`` torch threads (unless the
            overrides set ``train.cpu_threads``).
        overrides: ``key=value`` applied to every variant.
        metrics: extra metric functions, ``module:function`` taking ``(gt records, predicted records)`` and
            returning ``{name: value}`` (e.g. a twin-confusion rate).
        use_java: compute METEOR (needs Java).
    """

    out: Path
    variants: list[Variant]
    seeds: list[int]
    steps: int
    train_jsonl: Path
    val_jsonl: Path | None
    data_spec: dict[str, Any]
    test_splits: list[TestSplit]
    suite: str = "paper"
    jobs: int = 1
    overrides: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    use_java: bool = True


@dataclass
class Job:
    """One (training key, seed): a training and the evaluations that share it."""

    name: str
    seed: int
    run_dir: Path
    spec: dict[str, Any]

    def done(self) -> bool:
        return is_ok(self.run_dir / "train.json") and all(
            is_ok(Path(s["file"])) for ev in self.spec["evals"] for s in ev["splits"])


def _yaml_str(path: Path) -> str:
    return json.dumps(str(path))  # a JSON string is a YAML string: no path is misread as another type


def threads_per_job(jobs: int) -> int:
    """Torch threads of each of ``jobs`` concurrent runs: the machine's cores shared evenly (at least 1)."""
    return max(1, (os.cpu_count() or 1) // jobs)


def _check(s: SuiteRun) -> None:
    if s.jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {s.jobs}")
    if s.steps < 1:
        raise ValueError(f"--steps must be at least 1, got {s.steps}")
    if not s.seeds:
        raise ValueError("--seeds must be at least 1")
    if not s.variants:
        raise ValueError("no variants to run")
    if not s.test_splits:
        raise ValueError("no test split to evaluate on")
    names = [t.name for t in s.test_splits]
    if len(set(names)) != len(names):
        raise ValueError(f"test split names repeat: {names}")
    for t in s.test_splits:
        if not Path(t.jsonl).is_file():
            raise FileNotFoundError(f"test split {t.name!r}: file not found: {t.jsonl}")
    for spec in s.metrics:
        load_metric(spec)


def run_threads(s: SuiteRun) -> int:
    """Torch threads of every run: ``train.cpu_threads`` when the overrides give it (0 = auto, by the load),
    else :func:`threads_per_job`."""
    given = [o.split("=", 1)[1] for o in s.overrides if o.startswith("train.cpu_threads=")]
    if not given:
        return threads_per_job(s.jobs)
    try:
        return int(given[-1])
    except ValueError:
        raise ValueError(f"override train.cpu_threads={given[-1]}: expected an int") from None


def suite_overrides(s: SuiteRun) -> list[str]:
    """The user's overrides, then the suite's own settings (steps, data, no time budget, quiet runs)."""
    return [*s.overrides, f"data.train={_yaml_str(s.train_jsonl)}",
            f"data.val={'null' if s.val_jsonl is None else _yaml_str(s.val_jsonl)}", "data.test=null",
            f"train.max_steps={s.steps}", "train.epochs=null", "train.time_budget_min=null",
            "train.max_minutes=null", "train.progress=false", "train.val_every=0", "train.save_every=0",
            f"train.cpu_threads={run_threads(s)}"]


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_.-" else "-" for c in name)


def make_jobs(s: SuiteRun, planned: list[PlannedVariant]) -> dict[tuple[str, int], Job]:
    """One job per (training key, seed), seed-major so that a partial suite covers every variant early."""
    jobs: dict[tuple[str, int], Job] = {}
    ok = [p for p in planned if p.cfg is not None]
    split_key = digest([[t.name, t.spec] for t in s.test_splits] + [s.metrics])
    for seed in s.seeds:
        for p in ok:
            if (p.train_key, seed) in jobs or p.trained_by != p.variant.name:
                continue
            assert p.cfg is not None
            run_dir = s.out / "runs" / f"{p.variant.name}-{p.train_key}" / f"seed{seed}"
            config = to_dict(p.cfg)
            config["output_dir"] = str(run_dir / "train")
            config["train"]["seed"] = seed
            evals, seen = [], set()
            for q in ok:
                if q.train_key != p.train_key or q.eval_key in seen:
                    continue
                seen.add(q.eval_key)
                assert q.cfg is not None
                evals.append({"eval_key": q.eval_key, "generation": to_dict(q.cfg.model.generation), "splits": [
                    {"name": t.name, "jsonl": str(t.jsonl),
                     "file": str(run_dir / f"eval-{q.eval_key}-{_slug(t.name)}-{split_key}.json")}
                    for t in s.test_splits]})
            jobs[(p.train_key, seed)] = Job(p.variant.name, seed, run_dir, {
                "run_dir": str(run_dir), "config": config, "evals": evals, "metrics": list(s.metrics),
                "use_java": s.use_java, "threads": run_threads(s)})
    return jobs


# ---------------------------------------------------------------------------------------------- processes
@dataclass
class _Running:
    job: Job
    proc: BaseProcess
    t0: float


_CONTEXT: Any = None


def _context() -> Any:
    """A fork server that has imported the workers' modules once (spawn where there is no fork server)."""
    global _CONTEXT
    if _CONTEXT is None:
        if "forkserver" in multiprocessing.get_all_start_methods():
            _CONTEXT = multiprocessing.get_context("forkserver")
            _CONTEXT.set_forkserver_preload(list(PRELOAD))
        else:
            _CONTEXT = multiprocessing.get_context("spawn")
    return _CONTEXT


def _spawn(job: Job) -> _Running:
    job.run_dir.mkdir(parents=True, exist_ok=True)
    write_json(job.run_dir / "job.json", job.spec)
    proc = _context().Process(target=child_main, name=f"ablate-{job.name}-seed{job.seed}",
                              args=(str(job.run_dir / "job.json"), str(job.run_dir / "log.txt")))
    proc.start()
    return _Running(job, proc, time.perf_counter())


def _last_line(path: Path) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


def _finish(r: _Running, rc: int) -> None:
    """Record a worker that died before writing its results (a crash, the OOM killer) as failed."""
    job, logp = r.job, r.job.run_dir / "log.txt"
    why = f"worker exited with code {rc} ({_last_line(logp)}); log: {logp}"
    train = read_json(job.run_dir / "train.json")
    if train is None:
        write_json(job.run_dir / "train.json", {"status": "failed", "error": why})
    for ev in job.spec["evals"]:
        for s in ev["splits"]:
            if read_json(Path(s["file"])) is None:
                write_json(Path(s["file"]), {"status": "failed", "split": s["name"], "error": why})


def execute(jobs: list[Job], parallel: int, on_done: Any = None) -> None:
    """Run ``jobs`` with at most ``parallel`` worker processes; ``on_done(job)`` after each.

    On KeyboardInterrupt the running workers save a checkpoint and stop (SIGINT from the terminal, or
    SIGTERM from here) and the interrupt is re-raised once they have exited.
    """
    queue, running = list(jobs), list[_Running]()
    try:
        while queue or running:
            while queue and len(running) < parallel:
                job = queue.pop(0)
                log.info("start %s seed %d (%s)", job.name, job.seed, job.run_dir)
                running.append(_spawn(job))
            time.sleep(0.2)
            for r in list(running):
                rc = r.proc.exitcode
                if rc is None:
                    continue
                running.remove(r)
                r.proc.close()
                _finish(r, rc)
                log.info("done %s seed %d in %.0f s: %s", r.job.name, r.job.seed, time.perf_counter() - r.t0,
                         "ok" if r.job.done() else f"failed (see {r.job.run_dir / 'log.txt'})")
                if on_done is not None:
                    on_done(r.job)
    except KeyboardInterrupt:
        # A ^C reached the workers too (one process group): give their trainers time to save, then stop
        # any that did not get it (a second signal would make a trainer give up without saving).
        for r in running:
            r.proc.join(timeout=30)
            if r.proc.exitcode is None:
                r.proc.terminate()
                r.proc.join(timeout=300)
            if r.proc.exitcode is None:
                r.proc.kill()
                r.proc.join()
        raise


# ---------------------------------------------------------------------------------------------- results
def _machine() -> dict[str, Any]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        import platform

        cpu = platform.processor() or "?"
    return {"cpu": cpu, "cores": os.cpu_count(), "load_start": round(os.getloadavg()[0], 2)}


def collect(s: SuiteRun, planned: list[PlannedVariant], jobs: dict[tuple[str, int], Job],
            machine: dict[str, Any]) -> dict[str, Any]:
    """``results.json``'s content from the files the workers wrote."""
    runs: list[dict[str, Any]] = []
    for p in planned:
        for seed in s.seeds:
            entry: dict[str, Any] = {"variant": p.variant.name, "seed": seed, "metrics": {}, "eval_wall_s": {},
                                     "extra_names": []}
            runs.append(entry)
            if p.cfg is None:
                entry.update(status="failed", error=p.error)
                continue
            job = jobs[(p.train_key, seed)]
            entry["run_dir"] = str(job.run_dir)
            train = read_json(job.run_dir / "train.json")
            if train is None:
                entry.update(status="pending", error=None)
                continue
            entry.update({k: train.get(k) for k in ("steps", "max_steps", "train_wall_s", "samples_per_s",
                                                    "stage_wall_s", "time_capped")})
            if train["status"] != "ok":
                entry.update(status="failed", error=f"training: {train['error']}")
                continue
            ev = next(e for e in job.spec["evals"] if e["eval_key"] == p.eval_key)
            status, error = "ok", None
            for split in ev["splits"]:
                got = read_json(Path(split["file"]))
                if got is None:
                    status = "pending" if status == "ok" else status
                elif got["status"] != "ok":
                    status, error = "failed", error or f"evaluation on {split['name']}: {got['error']}"
                else:
                    entry["metrics"][split["name"]] = got["metrics"]
                    entry["eval_wall_s"][split["name"]] = got["eval_wall_s"]
                    entry["extra_names"] += [n for n in got.get("extra_names", []) if n not in entry["extra_names"]]
            entry.update(status=status, error=error)
    variants = [{"name": p.variant.name, "label": p.variant.label, "config": p.variant.config,
                 "paper": list(p.variant.paper) if p.variant.paper else None,
                 "paper_difference": paper_difference(*p.variant.paper) if p.variant.paper else None,
                 "trained_by": p.trained_by, "same_as": p.same_as, "train_key": p.train_key,
                 "eval_key": p.eval_key, "error": p.error} for p in planned]
    n_scenes = {}
    for r in runs:
        for name, m in r["metrics"].items():
            counts = m.get("counts", {}) if isinstance(m, dict) else {}
            if "images" in counts:
                n_scenes[name] = counts["images"]
    return {"suite": s.suite, "steps": s.steps, "seeds": list(s.seeds), "jobs": s.jobs,
            "threads": run_threads(s), "overrides": list(s.overrides), "data": s.data_spec,
            "test_splits": [{"name": t.name, "jsonl": str(t.jsonl), "spec": t.spec, "n_scenes": n_scenes.get(t.name)}
                            for t in s.test_splits],
            "extra_metrics": list(s.metrics),
            "machine": {**machine, "load_end": round(os.getloadavg()[0], 2)},
            "variants": variants, "runs": runs}


def run_suite(s: SuiteRun) -> dict[str, Any]:
    """Run (or resume) the suite and write ``results.json``, ``table.md``, ``table.html`` and ``plot.png``.

    Raises:
        ValueError / FileNotFoundError: bad settings, before any run starts.
    """
    _check(s)
    s.out.mkdir(parents=True, exist_ok=True)
    machine = _machine()
    planned = plan(s.variants, suite_overrides(s), s.data_spec)
    for p in planned:
        if p.error:
            log.warning("variant %s does not resolve: %s", p.variant.name, p.error)
    jobs = make_jobs(s, planned)
    todo = [j for j in jobs.values() if not j.done()]
    log.info("%d variant(s) x %d seed(s): %d distinct run(s), %d to do, %d at once",
             len(planned), len(s.seeds), len(jobs), len(todo), s.jobs)

    def publish(_job: Job | None = None) -> dict[str, Any]:
        results = collect(s, planned, jobs, machine)
        write_json(s.out / "results.json", results)
        write_tables(results, s.out)
        return results

    execute(todo, s.jobs, on_done=publish)
    results = publish()
    log.info("results: %s, %s", s.out / "results.json", s.out / "table.md")
    return results
