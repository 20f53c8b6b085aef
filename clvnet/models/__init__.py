"""CLV-Net model: config, one module per box of the paper's figure, ``modeling`` (the model), ``generation``
(decoding) and ``build`` (construction, checkpoints, trainable parameters).

Files import one way only: config → parts → modeling → generation / build (``make lint`` checks it).
Heavy imports are deferred: ``from clvnet.models import build_model, from_pretrained, generate``.
"""

from __future__ import annotations

from typing import Any

from clvnet.models.config import CLVNetConfig

__all__ = ["CLVNet", "CLVNetConfig", "CLVNetOutput", "GenerationOutput", "ImageFeatures", "build_model",
           "from_pretrained", "generate", "load_model_config", "save_pretrained"]

_LAZY = {"build_model": "build", "from_pretrained": "build", "save_pretrained": "build", "generate": "generation",
         "CLVNet": "modeling", "CLVNetOutput": "outputs", "GenerationOutput": "outputs", "ImageFeatures": "outputs"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"clvnet.models.{_LAZY[name]}"), name)
    raise AttributeError(name)


def load_model_config(path_or_preset: str, overrides: list[str] | None = None) -> CLVNetConfig:
    """Load a model config from a YAML path or a shipped preset name (``tiny``, ``paper``, …)."""
    from clvnet.config import load_config

    return load_config(CLVNetConfig, path_or_preset, overrides, section="model")
