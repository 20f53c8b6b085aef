"""Training checkpoints: the model's own folder format plus a training-state file, written atomically.

A checkpoint folder ``checkpoint-0000420/`` holds

- whatever ``clvnet.models.save_pretrained`` writes (``config.yaml``, ``model.safetensors``, tokenizer, ...);
- ``optimizer.safetensors`` + ``optimizer.json``: the optimiser state, tensors and scalars apart;
- ``rng.safetensors`` + ``rng.json``: torch / CUDA / numpy / Python RNG states of every rank;
- ``trainer_state.json``: step, data position, elapsed time, best metric, ...;
- ``train_config.yaml``: the full resolved training config.

Nothing is pickled. The folder is written under a temporary name and renamed into place, so a
crash (even ``kill -9``) leaves either the previous checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

CKPT_RE = re.compile(r"^checkpoint-(\d+)$")
STATE_FILE = "trainer_state.json"


# --------------------------------------------------------------------------- optimiser state
def optimizer_to_files(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into a tensor dict (for safetensors) and a JSON-able dict."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, pstate in state["state"].items():
        for name, value in pstate.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{idx}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[name] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in state["param_groups"]]
    return tensors, {"scalars": scalars, "param_groups": groups}


def optimizer_from_files(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`optimizer_to_files`."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    for idx, d in meta["scalars"].items():
        state.setdefault(int(idx), {}).update(d)
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


# --------------------------------------------------------------------------- RNG
def capture_rng() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """This process's RNG states as (tensors, JSON-able)."""
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda{i}"] = s
    np_state: Any = np.random.get_state()
    tensors["numpy_keys"] = torch.from_numpy(np.asarray(np_state[1], dtype=np.int64))
    py = random.getstate()
    meta = {"python": [py[0], list(py[1]), py[2]],
            "numpy": [str(np_state[0]), int(np_state[2]), int(np_state[3]), float(np_state[4])]}
    return tensors, meta


def restore_rng(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Restore what :func:`capture_rng` captured."""
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("cuda"))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
    name, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((name, tensors["numpy_keys"].numpy().astype(np.uint32), pos, has_gauss, cached))
    v, st, gauss = meta["python"]
    random.setstate((v, tuple(st), gauss))


# --------------------------------------------------------------------------- folders
def list_checkpoints(root: str | Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every complete ``checkpoint-N`` folder under ``root``, by step."""
    root = Path(root)
    if not root.is_dir():
        return []
    out = []
    for p in root.iterdir():
        m = CKPT_RE.match(p.name)
        if m and p.is_dir() and (p / STATE_FILE).is_file():
            out.append((int(m.group(1)), p))
    return sorted(out)


def _candidates(output_dir: Path) -> list[tuple[int, Path]]:
    """``(step, folder)`` of the run's checkpoints, newest first; a final checkpoint whose state cannot be
    read sorts first so that :func:`find_resumable` reports it."""
    cands = list_checkpoints(output_dir / "checkpoints")
    final = output_dir / "checkpoint"
    if (final / STATE_FILE).is_file():
        try:
            step = int(read_state(final)["step"])
        except (ValueError, KeyError, TypeError):
            step = 2**62
        cands.append((step, final))
    return sorted(cands, key=lambda sp: sp[0], reverse=True)


def find_latest(output_dir: str | Path) -> Path | None:
    """The most advanced resumable checkpoint of a run: ``checkpoints/checkpoint-N`` or ``checkpoint``."""
    cands = _candidates(Path(output_dir))
    return cands[0][1] if cands else None


def find_resumable(output_dir: str | Path) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The newest checkpoint of a run that passes :func:`check_checkpoint`, and the newer ones that did not.

    Returns:
        ``(folder or None, [(skipped folder, why), ...])``; ``None`` when the run has no usable checkpoint.
    """
    skipped: list[tuple[Path, str]] = []
    for _, folder in _candidates(Path(output_dir)):
        problems = check_checkpoint(folder)
        if not problems:
            return folder, skipped
        skipped.append((folder, "; ".join(problems)))
    return None, skipped


def read_state(ckpt: str | Path) -> dict[str, Any]:
    """The ``trainer_state.json`` of a checkpoint (raises naming the folder if it is not one or is corrupt)."""
    path = Path(ckpt) / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{ckpt} is not a training checkpoint (no {STATE_FILE})")
    try:
        state = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is corrupt (not valid JSON: {exc})") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path} is corrupt (not a JSON object)")
    return state


def check_weights(folder: str | Path) -> list[str]:
    """Problems with the safetensors files in ``folder`` and its sub-folders (empty when all are readable).

    Only the headers are read: a truncated or overwritten file fails here, before any loading starts.
    """
    from safetensors import SafetensorError, safe_open

    problems = []
    for f in sorted(Path(folder).rglob("*.safetensors")):
        try:
            with safe_open(str(f), framework="pt"):
                pass
        except (SafetensorError, OSError) as exc:
            problems.append(f"{f.relative_to(folder)} is truncated or corrupt ({exc})")
    return problems


def check_checkpoint(folder: str | Path) -> list[str]:
    """Problems that would stop a resume from ``folder`` (empty when none): unreadable trainer state, JSON
    side files or weights, or a missing model config / weights file."""
    folder = Path(folder)
    problems = []
    try:
        read_state(folder)
    except (OSError, ValueError) as exc:
        problems.append(str(exc))
    for name in ("optimizer.json", "rng.json"):
        path = folder / name
        if path.is_file():
            try:
                json.loads(path.read_bytes())
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                problems.append(f"{name} is corrupt (not valid JSON: {exc})")
    problems += [f"{name} is missing" for name in ("config.yaml", "model.safetensors") if not (folder / name).is_file()]
    return problems + check_weights(folder)


def write_atomic_dir(final: Path, fill: Callable[[Path], None]) -> Path:
    """Create ``final`` by filling a temporary sibling folder and renaming it into place."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        fill(tmp)
        _fsync_dir(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    trash = None
    if final.exists():
        trash = final.parent / f".old-{final.name}-{os.getpid()}"
        os.replace(final, trash)
    os.replace(tmp, final)
    _fsync_dir(final.parent)
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)
    return final


def _fsync_dir(path: Path) -> None:
    for f in path.iterdir() if path.is_dir() else []:
        if f.is_file():
            with f.open("rb") as fh:
                os.fsync(fh.fileno())
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on folders
        pass


def write_training_state(folder: Path, *, optimizer_state: dict[str, Any] | None, rng_states: list[tuple[dict[str, torch.Tensor], dict[str, Any]]],
                         trainer_state: dict[str, Any]) -> None:
    """Write optimiser (unless ``None``), RNG (one entry per rank) and trainer state files into ``folder``."""
    if optimizer_state is not None:
        t, meta = optimizer_to_files(optimizer_state)
        save_file(t, str(folder / "optimizer.safetensors"))
        (folder / "optimizer.json").write_text(json.dumps(meta))
    rng_t: dict[str, torch.Tensor] = {}
    rng_meta: list[dict[str, Any]] = []
    for rank, (tensors, m) in enumerate(rng_states):
        rng_t.update({f"rank{rank}.{k}": v.contiguous() for k, v in tensors.items()})
        rng_meta.append(m)
    save_file(rng_t, str(folder / "rng.safetensors"))
    (folder / "rng.json").write_text(json.dumps(rng_meta))
    (folder / STATE_FILE).write_text(json.dumps(trainer_state, indent=1))


def load_optimizer_state(folder: str | Path) -> dict[str, Any]:
    """The optimiser state dict saved in ``folder``."""
    folder = Path(folder)
    return optimizer_from_files(load_file(str(folder / "optimizer.safetensors")),
                                json.loads((folder / "optimizer.json").read_text()))


def load_rng_state(folder: str | Path, rank: int) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """RNG state of ``rank`` saved in ``folder`` (``None`` if that rank was not saved)."""
    folder = Path(folder)
    metas = json.loads((folder / "rng.json").read_text())
    if rank >= len(metas):
        return None
    tensors = load_file(str(folder / "rng.safetensors"))
    prefix = f"rank{rank}."
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}, metas[rank]


def rotate(root: str | Path, keep_last: int, protect: set[Path] | None = None) -> list[Path]:
    """Delete all but the ``keep_last`` newest checkpoints in ``root``, never those in ``protect``."""
    protect = {Path(p).resolve() for p in (protect or set())}
    ckpts = list_checkpoints(root)
    doomed = [p for _, p in ckpts[: max(len(ckpts) - max(keep_last, 1), 0)] if p.resolve() not in protect]
    for p in doomed:
        shutil.rmtree(p, ignore_errors=True)
    return doomed
