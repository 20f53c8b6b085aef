"""CLV-Net model: config, modules (one per box of the diagram), builder, checkpoints.

Heavy imports are deferred: ``from clvnet.models import build_model, CLVNet, CLVNetConfig``.
"""

from __future__ import annotations

from typing import Any

from clvnet.models.config import CLVNetConfig

__all__ = ["CLVNet", "CLVNetConfig", "CLVNetOutput", "GenerationOutput", "ImageFeatures", "build_model",
           "load_model_config"]


def __getattr__(name: str) -> Any:
    if name == "build_model":
        from clvnet.models.builder import build_model

        return build_model
    if name in ("CLVNet", "CLVNetOutput", "GenerationOutput", "ImageFeatures"):
        from clvnet.models import clvnet

        return getattr(clvnet, name)
    raise AttributeError(name)


def load_model_config(path_or_preset: str, overrides: list[str] | None = None) -> CLVNetConfig:
    """Load a model config from a YAML path or a shipped preset name (``tiny``, ``paper``, …)."""
    from clvnet.config import load_config

    return load_config(CLVNetConfig, path_or_preset, overrides, section="model")
