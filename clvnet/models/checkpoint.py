"""Checkpoint folders: config.yaml, model.safetensors, tokenizer/, and adapter/ when LoRA is used.

``model.safetensors`` holds every tensor that is not an unchanged copy of a pretrained folder:
trainable parameters, everything built from scratch (for the tiny preset: all of it) and the
LLM embeddings when special tokens were added. Loading is strict: the expected key set is derived
from the config, and any missing, unexpected or mis-shaped key is named in the error. Weights are
never pickled.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from clvnet.config import load_config, save_yaml
from clvnet.models.config import CLVNetConfig

if TYPE_CHECKING:
    from clvnet.models.clvnet import CLVNet

WEIGHTS = "model.safetensors"
CONFIG = "config.yaml"
TOKENIZER = "tokenizer"
ADAPTER = "adapter"


def checkpoint_keys(model: CLVNet) -> list[str]:
    """State-dict keys a checkpoint of ``model`` must contain."""
    grads = {n for n, p in model.named_parameters() if p.requires_grad}
    keep = []
    for k in model.state_dict():
        pretrained = any(k.startswith(p) for p in model.pretrained_prefixes)
        if not pretrained or k in grads or k in model.resized_embedding_keys:
            keep.append(k)
    return keep


def save_checkpoint(model: CLVNet, directory: str | Path) -> Path:
    """Write the checkpoint folder and return its path."""
    from safetensors.torch import save_file

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    save_yaml(model.cfg, out / CONFIG)
    sd = model.state_dict()
    tensors = {k: sd[k].detach().contiguous().cpu() for k in checkpoint_keys(model)}
    _dedupe_shared(tensors)
    save_file(tensors, str(out / WEIGHTS), metadata={"format": "pt", "model": "clvnet", "name": model.cfg.name})
    if model.tokenizer is not None:
        model.tokenizer.save_pretrained(str(out / TOKENIZER))
    if model.cfg.trainable.llm == "lora":
        model.reasoner.llm.save_pretrained(str(out / ADAPTER))
    return out


def _dedupe_shared(tensors: dict[str, torch.Tensor]) -> None:
    """safetensors refuses shared storage (tied weights): store independent copies."""
    seen: set[int] = set()
    for k, v in tensors.items():
        ptr = v.untyped_storage().data_ptr()
        if ptr in seen:
            tensors[k] = v.clone()
        seen.add(ptr)


def load_checkpoint(directory: str | Path, device: str | torch.device = "cpu", *,
                    trust_remote_code: bool = False) -> CLVNet:
    """Build the model from ``config.yaml``, load ``model.safetensors`` strictly; returns it in eval mode.

    Code shipped with a checkpoint (a tokenizer's or an LLM's ``auto_map``) runs only when the caller
    passes ``trust_remote_code=True``; the checkpoint's own ``llm.trust_remote_code`` never grants it.

    Raises:
        PermissionError: the checkpoint needs remote code and ``trust_remote_code`` is False.
    """
    import dataclasses

    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    from clvnet.models.builder import build_model

    d = Path(directory)
    for name in (CONFIG, WEIGHTS):
        if not (d / name).is_file():
            raise FileNotFoundError(f"checkpoint {d}: missing {name}")
    cfg = load_config(CLVNetConfig, d / CONFIG)
    if cfg.llm.trust_remote_code and not trust_remote_code:
        raise PermissionError(
            f"checkpoint {d} runs Python code from its model folders (config llm.trust_remote_code: true, "
            f"LLM {cfg.llm.pretrained_path!r}); pass --trust-remote-code (trust_remote_code=True) only if you "
            "trust where it came from")
    cfg = dataclasses.replace(cfg, llm=dataclasses.replace(cfg.llm, trust_remote_code=trust_remote_code))
    tok = None
    if (d / TOKENIZER).is_dir():
        try:
            tok = AutoTokenizer.from_pretrained(str(d / TOKENIZER), trust_remote_code=trust_remote_code,
                                                local_files_only=True)
        except ValueError as exc:
            if trust_remote_code or "trust_remote_code" not in str(exc):
                raise
            raise PermissionError(
                f"checkpoint {d}: its tokenizer ({d / TOKENIZER}) runs Python code from the checkpoint; pass "
                "--trust-remote-code (trust_remote_code=True) only if you trust where it came from") from exc
    model = build_model(cfg, tokenizer=tok)
    load_weights(model, load_file(str(d / WEIGHTS)), source=str(d / WEIGHTS))
    return model.to(device).eval()


def load_weights(model: CLVNet, tensors: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Load ``tensors`` into ``model``; the key set must equal :func:`checkpoint_keys` exactly."""
    expected = set(checkpoint_keys(model))
    got = set(tensors)
    missing, unexpected = sorted(expected - got), sorted(got - expected)
    sd = model.state_dict()
    shapes = sorted(k for k in expected & got if tuple(sd[k].shape) != tuple(tensors[k].shape))
    problems = []
    if missing:
        problems.append(f"missing keys ({len(missing)}): {', '.join(missing[:20])}")
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected[:20])}")
    if shapes:
        problems.append("shape mismatch: " + ", ".join(
            f"{k} {tuple(tensors[k].shape)} vs model {tuple(sd[k].shape)}" for k in shapes[:20]))
    if problems:
        raise ValueError(f"{source} does not match the model config: " + "; ".join(problems))
    result = model.load_state_dict(tensors, strict=False)
    if result.unexpected_keys:
        raise ValueError(f"{source}: unexpected keys {result.unexpected_keys[:20]}")
