"""The training loop: AdamW + warm-up/cosine, accumulation, clipping, validation, checkpoints, resume.

:class:`Trainer` builds everything from a :class:`~clvnet.engine.config.TrainConfig` (failing
before any heavy work on a missing file or a bad key), and :meth:`Trainer.fit` runs until the
step, epoch or time budget is used up, the wall-clock cap (``train.max_minutes``) is reached, or a
SIGINT/SIGTERM arrives (it then saves and returns).
Resuming (``resume="auto"`` or a checkpoint folder) restores model, optimiser, schedule, step,
RNG states and data position, so N steps straight equal N/2 + resume + N/2.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from clvnet.config import save_yaml
from clvnet.engine import checkpointing as ckpt
from clvnet.engine.card import CardFacts
from clvnet.engine.config import TrainConfig, check_paths, check_sizes
from clvnet.engine.distributed import (
    ShardedResumableSampler,
    any_flag,
    configure_deepspeed,
    gather_objects,
    make_accelerator,
)
from clvnet.engine.logging import RunLogger
from clvnet.engine.runtime import (
    auto_threads,
    enable_gradient_checkpointing,
    ignore_sigint,
    param_groups,
)
from clvnet.engine.schedule import LRScheduler, step_progress, time_progress
from clvnet.engine.state import TrainState, build_or_resume_model
from clvnet.engine.validation import Collator, to_device, validate
from clvnet.models import save_pretrained
from clvnet.models.card import save_card

log = logging.getLogger("clvnet.train")
LOSS_KEYS = ("total", "caption", "mask_bce", "mask_dice", "csc", "rec")


class TrainingAborted(RuntimeError):
    """Training stopped on repeated non-finite losses (a checkpoint was saved first)."""


@dataclass
class _Timers:
    data: float = 0.0
    forward: float = 0.0
    backward: float = 0.0
    optim: float = 0.0
    samples: int = 0
    t0: float = 0.0


class Trainer:
    """One training run.

    Args:
        cfg: the resolved training config.
        resume: ``None`` (fresh run), ``"auto"`` (latest checkpoint of ``cfg.output_dir`` if any) or a
            checkpoint folder.
    """

    def __init__(self, cfg: TrainConfig, resume: str | None = None) -> None:
        check_paths(cfg)
        check_sizes(cfg)
        self.cfg = cfg
        self.out = Path(cfg.output_dir)
        t = cfg.train
        self.threads = torch.get_num_threads()
        if t.device != "cuda":
            self.threads = t.cpu_threads if t.cpu_threads > 0 else auto_threads()
            torch.set_num_threads(self.threads)
            log.info("torch CPU threads: %d%s", self.threads, "" if t.cpu_threads > 0 else " (auto)")
        self.acc = make_accelerator(device=t.device, precision=t.precision, grad_accum=1,
                                    find_unused_parameters=t.find_unused_parameters)
        self.resume_dir = self._resolve_resume(resume)
        torch.manual_seed(t.seed + self.acc.process_index)

        from clvnet.data.dataset import GCGDataset
        from clvnet.data.record import read_jsonl

        # every record is checked up front (spans, limits, RLEs), so bad data fails now, not hours into the run
        check = cfg.data.dataset.validate
        train_records = read_jsonl(cfg.data.train, validate_records=check)
        captions = [r.caption for r in train_records]
        # what every checkpoint's model card says about the training data (clvnet.models.card)
        image_root = Path(cfg.data.dataset.root) if cfg.data.dataset.root else Path(cfg.data.train).parent
        self.card_facts = CardFacts.from_records(train_records, image_root, cfg.model.name)
        del train_records
        if cfg.data.val:
            read_jsonl(cfg.data.val, validate_records=check)
        model = build_or_resume_model(cfg.model, captions, self.resume_dir)
        assert model.processor is not None            # a model with a tokenizer always has one
        views = model.processor.views                 # the model's input sizes, saved with its checkpoints
        self.train_set = GCGDataset(cfg.data.train, cfg.data.dataset, train=True, seed=t.seed, views=views)
        self.val_set = GCGDataset(cfg.data.val, cfg.data.dataset, train=False, views=views) if cfg.data.val else None
        if cfg.data.dataset.cache_mb and cfg.data.num_workers and self.acc.is_main_process:
            log.warning("data.dataset.cache_mb=%d with data.num_workers=%d: each worker keeps its own cache and "
                        "loses it when the loader is rebuilt every epoch; use num_workers=0 with the cache",
                        cfg.data.dataset.cache_mb, cfg.data.num_workers)
        if t.gradient_checkpointing:
            n_gc = enable_gradient_checkpointing(model)
            if self.acc.is_main_process:
                log.info("gradient checkpointing on in %d transformers sub-model(s)", n_gc)
        n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
        n_all = sum(p.numel() for p in model.parameters())
        self.n_trainable = n_train
        if self.acc.is_main_process:
            log.info("trainable parameters: %s of %s (%.1f%%)", f"{n_train:,}", f"{n_all:,}",
                     100.0 * n_train / max(n_all, 1))
        groups = param_groups(model, cfg.optim.weight_decay, cfg.optim.lr, cfg.optim.lr_scale)
        # the fused kernel (CPU and CUDA) replaces a dozen small ops per parameter tensor; DeepSpeed steps its own way
        fused = self.acc.state.deepspeed_plugin is None
        self.optimizer = torch.optim.AdamW(groups, lr=cfg.optim.lr, betas=cfg.optim.betas, eps=cfg.optim.eps,
                                           fused=fused)
        self.scheduler = LRScheduler(self.optimizer, cfg.schedule)
        if self.acc.state.deepspeed_plugin is not None:
            configure_deepspeed(self.acc, batch_size=t.batch_size, grad_accum=t.grad_accum,
                                grad_clip=cfg.optim.grad_clip)
        self.model, self.optimizer = self.acc.prepare(model, self.optimizer)
        if self.acc.is_main_process:
            log.info("distributed: %s, %d process(es) on %s", self.acc.distributed_type, self.acc.num_processes,
                     self.acc.device)
        # DeepSpeed scales the loss for accumulation itself and shards the optimiser state (ZeRO-2).
        self.deepspeed = str(self.acc.distributed_type).upper().endswith("DEEPSPEED")
        self.collate = Collator(self.acc.unwrap_model(self.model).processor)
        self.sampler = ShardedResumableSampler(len(self.train_set), rank=self.acc.process_index,
                                               world_size=self.acc.num_processes, seed=t.seed)
        self.steps_per_epoch = len(self.sampler.shard(0)) // t.batch_size // t.grad_accum
        if self.steps_per_epoch == 0:
            raise ValueError(f"data.train has {len(self.train_set)} samples: too few for "
                             f"{self.acc.num_processes} process(es) x batch {t.batch_size} x accum {t.grad_accum}")
        if t.max_steps is not None:
            self.total_steps: int | float = t.max_steps
        elif t.epochs is not None:
            self.total_steps = t.epochs * self.steps_per_epoch
        else:  # a time budget alone bounds the run; otherwise one epoch
            self.total_steps = math.inf if t.time_budget_min is not None else self.steps_per_epoch
        self.state = TrainState()
        if self.resume_dir is not None:
            self._load_state(self.resume_dir)
        self.logger = RunLogger(self.out, self.state.step if self.resume_dir else None,
                                t.tensorboard) if self.acc.is_main_process else None
        self._stop_signal: int | None = None
        self._capped = False

    @property
    def stopped_by_signal(self) -> int | None:
        """The signal (SIGINT / SIGTERM) that stopped :meth:`fit` early, or ``None``."""
        return self._stop_signal

    @property
    def stopped_by_time_cap(self) -> bool:
        """True when ``train.max_minutes`` ended :meth:`fit` before its ``max_steps`` / ``epochs``."""
        return self._capped

    # ------------------------------------------------------------------ setup helpers
    def _resolve_resume(self, resume: str | None) -> Path | None:
        if resume is None:
            return None
        if resume == "auto":
            found, skipped = ckpt.find_resumable(self.out)
            for folder, why in skipped:
                log.warning("--resume auto: skipping %s: %s", folder, why)
            if found is None and skipped:
                raise ValueError(f"--resume auto: no usable checkpoint in {self.out}; every one is damaged: "
                                 + " | ".join(f"{f}: {why}" for f, why in skipped))
            if found is None:
                log.info("--resume auto: no checkpoint in %s, starting fresh", self.out)
            elif skipped:
                log.warning("--resume auto: resuming from %s, the newest checkpoint that is intact", found)
            return found
        path = Path(resume)
        ckpt.read_state(path)  # raises naming the folder if it is not a checkpoint
        problems = ckpt.check_checkpoint(path)
        if problems:
            raise ValueError(f"--resume {path}: the checkpoint is damaged: {'; '.join(problems)}")
        return path

    def _load_state(self, folder: Path) -> None:
        self.state = TrainState.from_dict(ckpt.read_state(folder))
        if (Path(folder) / "optimizer.safetensors").is_file():
            self.optimizer.load_state_dict(ckpt.load_optimizer_state(folder))
        else:
            log.warning("%s has no optimiser state (saved under DeepSpeed): Adam moments start from zero", folder)
        self.scheduler.load_state_dict(self.state.scheduler)
        rng = ckpt.load_rng_state(folder, self.acc.process_index)
        if rng is None:
            log.warning("checkpoint has no RNG state for rank %d (saved by %d processes); reseeding",
                        self.acc.process_index, self.state.world_size)
        else:
            ckpt.restore_rng(*rng)
        if self.state.world_size != self.acc.num_processes:
            log.warning("resuming a %d-process run with %d processes: the data order changes",
                        self.state.world_size, self.acc.num_processes)
        if self.acc.is_main_process:
            log.info("resumed from %s at step %d (epoch %d, sample %d)", folder, self.state.step,
                     self.state.epoch, self.state.position)

    # ------------------------------------------------------------------ checkpoints
    def save(self, final: bool = False) -> Path:
        """Write a checkpoint (rank 0 writes; every rank contributes its RNG state)."""
        self.state.scheduler = self.scheduler.state_dict()
        self.state.world_size = self.acc.num_processes
        rngs = gather_objects(self.acc, ckpt.capture_rng())
        name = self.out / "checkpoint" if final else self.out / "checkpoints" / f"checkpoint-{self.state.step:07d}"
        if final and self.state.best_step == self.state.step:
            self.state.best_path = str(name)
        if self.acc.is_main_process:
            model = self.acc.unwrap_model(self.model)
            opt_state = None if self.deepspeed else self.optimizer.state_dict()

            def fill(tmp: Path) -> None:
                save_pretrained(model, tmp)
                ckpt.write_training_state(tmp, optimizer_state=opt_state, rng_states=rngs,
                                          trainer_state=self.state.to_dict())
                save_yaml(self.cfg, tmp / "train_config.yaml")
                save_card(tmp, self.card_facts.card(steps=self.state.step, samples_seen=self._samples_seen()))

            ckpt.write_atomic_dir(name, fill)
            protect = {Path(self.state.best_path)} if self.state.best_path else set()
            ckpt.rotate(self.out / "checkpoints", self.cfg.train.keep_last, protect)
            log.info("saved checkpoint %s", name)
        self.acc.wait_for_everyone()
        return name

    def _samples_seen(self) -> int:
        t = self.cfg.train
        return self.state.step * t.batch_size * t.grad_accum * self.acc.num_processes

    # ------------------------------------------------------------------ the loop
    def _loader(self) -> DataLoader:
        t = self.cfg.train
        self.sampler.set_position(self.state.epoch, self.state.position)
        self.train_set.set_epoch(self.state.epoch)
        gen = torch.Generator().manual_seed(t.seed * 100_003 + self.state.epoch * 1009 + self.state.position)
        return DataLoader(self.train_set, batch_size=t.batch_size, sampler=self.sampler, drop_last=True,
                          collate_fn=self.collate, num_workers=self.cfg.data.num_workers, generator=gen,
                          worker_init_fn=ignore_sigint, persistent_workers=False,
                          prefetch_factor=4 if self.cfg.data.num_workers else None)

    def _progress(self, elapsed: float) -> float:
        t, s = self.cfg.train, self.state
        p = 0.0
        if math.isfinite(self.total_steps):
            p = step_progress(s.step, int(self.total_steps), self.cfg.schedule.warmup_steps)
        if t.time_budget_min is not None:
            p = max(p, time_progress(elapsed, 60.0 * t.time_budget_min, s.warmup_elapsed))
        return p

    def _done(self, elapsed: float) -> bool:
        t = self.cfg.train
        if self.state.step >= self.total_steps:
            return True
        over_budget = t.time_budget_min is not None and elapsed >= 60.0 * t.time_budget_min
        over_cap = t.max_minutes is not None and elapsed >= 60.0 * t.max_minutes
        if not any_flag(self.acc, over_budget or over_cap):
            return False
        # the cap, not the budget, ended the run when it is the tighter of the two
        self._capped = t.max_minutes is not None and (t.time_budget_min is None or t.max_minutes <= t.time_budget_min)
        return True

    def fit(self) -> Path:
        """Train to the end of the budget; returns the final checkpoint folder (``output_dir/checkpoint``)."""
        t = self.cfg.train
        if self.acc.is_main_process:
            self.out.mkdir(parents=True, exist_ok=True)
            save_yaml(self.cfg, self.out / "train_config.yaml")
        old = self._install_signals()
        try:
            self._run()
        finally:
            self._restore_signals(old)
            if self.logger is not None:
                self.logger.close()
        if self._stop_signal is not None:
            path = self.save()
            if self.acc.is_main_process:
                log.warning("stopped by signal %d at step %d; checkpoint %s", self._stop_signal, self.state.step, path)
            return path
        if self._capped and self.acc.is_main_process:
            log.warning("stopped by the time cap (train.max_minutes=%g) at step %d of %s", t.max_minutes,
                        self.state.step, self.total_steps)
        if self.val_set is not None and (t.val_every == 0 or self.state.step % t.val_every != 0):
            self._validate()
        return self.save(final=True)

    def _stop_requested(self) -> bool:
        if any_flag(self.acc, self._stop_signal is not None) and self._stop_signal is None:
            self._stop_signal = int(signal.SIGTERM)  # another rank was signalled
        return self._stop_signal is not None

    def _run(self) -> None:
        t, s = self.cfg.train, self.state
        self._start = time.perf_counter() - s.elapsed
        tm = _Timers(t0=time.perf_counter())
        pbar = self._pbar()
        micro = 0
        while not (self._done(time.perf_counter() - self._start) or self._stop_requested()):
            epoch_finished = True
            t_fetch = time.perf_counter()
            for _batch, inputs in self._loader():
                tm.data += time.perf_counter() - t_fetch
                inputs = to_device(inputs, self.acc.device)
                sync = (micro + 1) % t.grad_accum == 0
                s.position += t.batch_size
                ok = self._micro_step(inputs, sync, tm)
                micro = micro + 1 if ok and not sync else 0
                if ok:
                    tm.samples += t.batch_size * self.acc.num_processes
                if ok and sync:
                    s.step += 1
                    s.elapsed = time.perf_counter() - self._start
                    if s.warmup_elapsed is None and s.step >= self.cfg.schedule.warmup_steps:
                        s.warmup_elapsed = s.elapsed
                    self._after_step(tm, s.elapsed, pbar)
                    if self._done(s.elapsed) or self._stop_requested():
                        epoch_finished = False
                        break
                t_fetch = time.perf_counter()
            if epoch_finished:
                s.epoch += 1
                s.position = 0
        if pbar is not None:
            pbar.close()

    def _micro_step(self, inputs: dict[str, Any], sync: bool, tm: _Timers) -> bool:
        """Forward/backward one micro-batch (and step on ``sync``); False if the loss was not finite."""
        t, s = self.cfg.train, self.state
        s.scheduler_lr = self.scheduler.set(s.step, self._progress(time.perf_counter() - self._start))
        self.model.train()
        t0 = time.perf_counter()
        ctx = nullcontext() if sync else self.acc.no_sync(self.model)
        with ctx:
            out = self.model(inputs)
            loss = out.loss
            t1 = time.perf_counter()
            tm.forward += t1 - t0
            bad = any_flag(self.acc, not bool(torch.isfinite(loss.detach()).item()))
            if bad:
                self._nonfinite(out)
                return False
            self.acc.backward(loss if self.deepspeed else loss / t.grad_accum)
        t2 = time.perf_counter()
        tm.backward += t2 - t1
        for k in LOSS_KEYS:
            v = out.losses.get(k)
            if v is not None:
                s.loss_sums[k] = s.loss_sums.get(k, 0.0) + float(v.detach().float().item())
        s.loss_count += 1
        if sync:
            gn = self.acc.clip_grad_norm_(self.model.parameters(), self.cfg.optim.grad_clip or math.inf)
            gn_val = float(gn.item()) if isinstance(gn, torch.Tensor) else float(gn or 0.0)
            if any_flag(self.acc, not math.isfinite(gn_val)):
                self.optimizer.zero_grad(set_to_none=True)
                self._nonfinite(out)
                return False
            s.grad_norm = gn_val
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            s.nonfinite_streak = 0
        tm.optim += time.perf_counter() - t2
        return True

    def _nonfinite(self, out: Any) -> None:
        s = self.state
        self.optimizer.zero_grad(set_to_none=True)
        s.nonfinite_streak += 1
        terms = {k: float(v.detach().float().item()) for k, v in out.losses.items()}
        log.warning("non-finite loss at step %d (%d in a row), step skipped: %s", s.step, s.nonfinite_streak, terms)
        if s.nonfinite_streak >= self.cfg.train.max_nonfinite:
            path = self.save()
            raise TrainingAborted(f"{s.nonfinite_streak} non-finite losses in a row at step {s.step}; "
                                  f"saved {path} (the last finite state)")

    def _after_step(self, tm: _Timers, elapsed: float, pbar: Any) -> None:
        t, s = self.cfg.train, self.state
        if pbar is not None:
            if t.time_budget_min is not None and s.step > 5:
                est = int(s.step * 60.0 * t.time_budget_min / max(elapsed, 1e-6))
                pbar.total = int(min(self.total_steps, est))
            pbar.update(1)
            if s.loss_count:
                pbar.set_postfix(loss=f"{s.loss_sums.get('total', 0.0) / s.loss_count:.3f}", lr=f"{s.scheduler_lr:.2e}")
        if s.step % t.log_every == 0 and s.loss_count:
            dt = time.perf_counter() - tm.t0
            row: dict[str, Any] = {"step": s.step, "epoch": s.epoch, "lr": s.scheduler_lr}
            row.update({k: s.loss_sums.get(k, 0.0) / s.loss_count for k in LOSS_KEYS})
            row.update({"grad_norm": s.grad_norm, "samples_per_s": tm.samples / max(dt, 1e-9),
                        "data_s": tm.data, "forward_s": tm.forward, "backward_s": tm.backward,
                        "optim_s": tm.optim, "elapsed_s": elapsed})
            if self.logger is not None:
                self.logger.log_train(row)
            s.loss_sums, s.loss_count = {}, 0
            tm.data = tm.forward = tm.backward = tm.optim = 0.0
            tm.samples, tm.t0 = 0, time.perf_counter()
        last = self._done(elapsed)  # the final validation and checkpoint follow in fit()
        improved = False
        if self.val_set is not None and t.val_every > 0 and s.step % t.val_every == 0:
            improved = self._validate()
        # the best checkpoint is written when it is found (and kept by the rotation)
        if ((t.save_every > 0 and s.step % t.save_every == 0) or improved) and not last:
            self.save()

    def _validate(self) -> bool:
        """Validate on rank 0; returns True (on every rank) if the best metric improved."""
        t, s = self.cfg.train, self.state
        before = s.best_step
        if self.acc.is_main_process and self.val_set is not None:
            with self.acc.autocast():
                row, samples = validate(self.acc.unwrap_model(self.model), self.val_set, self.collate,
                                        self.acc.device, batch_size=t.batch_size,
                                        max_samples=self.cfg.data.val_max_samples, n_captions=t.val_captions,
                                        max_new_tokens=t.val_max_new_tokens)
            row = {"step": s.step, **row}
            if self.logger is not None:
                self.logger.log_val(row)
                self.logger.log_samples(s.step, samples)
            log.info("val step %d: %s", s.step, ", ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "step"))
            value = row.get(t.best_metric)
            if value is not None and (s.best_value is None or (value > s.best_value if t.best_mode == "max"
                                                                else value < s.best_value)):
                s.best_value = float(value)
                s.best_step = s.step
                s.best_path = str(self.out / "checkpoints" / f"checkpoint-{s.step:07d}")
        s.best_value, s.best_step, s.best_path = gather_objects(self.acc, (s.best_value, s.best_step, s.best_path))[0]
        self.acc.wait_for_everyone()
        return s.best_step != before

    def _pbar(self) -> Any:
        if not (self.cfg.train.progress and self.acc.is_main_process):
            return None
        from tqdm.auto import tqdm

        return tqdm(total=self.total_steps if self.cfg.train.time_budget_min is None else None,
                    initial=self.state.step, desc="train", unit="step", dynamic_ncols=True, mininterval=1.0)

    # ------------------------------------------------------------------ signals
    def _install_signals(self) -> dict[int, Any]:
        old: dict[int, Any] = {}

        def handler(signum: int, frame: Any) -> None:
            if self._stop_signal is not None:  # second signal: give up at once
                raise KeyboardInterrupt
            self._stop_signal = signum
            log.warning("signal %d: saving a checkpoint after this step", signum)

        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread
                old[sig] = signal.signal(sig, handler)
        return old

    @staticmethod
    def _restore_signals(old: dict[int, Any]) -> None:
        for sig, h in old.items():
            signal.signal(sig, h)


def train(cfg: TrainConfig, resume: str | None = None) -> Path:
    """Train ``cfg`` (design §8.6); returns the final checkpoint folder.

    Args:
        cfg: the training config.
        resume: ``None``, ``"auto"`` or a checkpoint folder.

    Raises:
        FileNotFoundError: a data file named by the config is missing.
        TrainingAborted: too many non-finite losses in a row.
    """
    return Trainer(cfg, resume=resume).fit()


__all__ = ["Trainer", "TrainingAborted", "train"]
