"""Interactive web demo: draw boxes on an aerial image and read grounded, colour-coded captions.

``build_app(predictor)`` makes the Gradio Blocks app and ``launch_app(app, ...)`` serves it; the
``clvnet demo`` command does both. Gradio is imported only when these are called, so importing
``clvnet.demo`` stays cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import gradio as gr

__all__ = ["build_app", "launch_app"]


def build_app(predictor: Any, *, max_boxes: int = 4, workdir: str | Path | None = None,
              title: str = "CLV-Net demo", max_pixels: int | None = None, card: Any = None) -> gr.Blocks:
    """Build the demo app around a loaded ``Predictor``; see :func:`clvnet.demo.app.build_app`."""
    from clvnet.demo.app import build_app as _build
    from clvnet.demo.service import MAX_PIXELS

    return _build(predictor, max_boxes=max_boxes, workdir=workdir, title=title,
                  max_pixels=MAX_PIXELS if max_pixels is None else max_pixels, card=card)


def launch_app(demo: gr.Blocks, **kwargs: Any) -> Any:
    """Queue and serve the app; see :func:`clvnet.demo.app.launch_app` for the options."""
    from clvnet.demo.app import launch_app as _launch

    return _launch(demo, **kwargs)
