"""Fixtures for the demo tests: a tiny checkpoint and its Predictor, the app served on a free loopback
port, and a headless Chromium.

The checkpoint is a real tiny CLV-Net (``build_model`` + ``save_pretrained``) whose LLM is *scripted*:
its weights are set so that greedy decoding writes a fixed grounded caption with one ``[SEG]`` phrase,
whatever the image. Everything else (vision, region encoder, CGFormer, mask decoder) keeps random
weights, so the masks are real model outputs. (Same construction as ``tests/inference/conftest.py``.)

The browser is Debian's ``/usr/bin/chromium`` (``scripts/ci_browser_setup.sh`` installs it), driven by
Playwright from PyPI; no test ever lets Playwright download a browser of its own.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from testkit import free_port, make_scripted_checkpoint

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts"
CHROMIUM = os.environ.get("CLVNET_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny scripted CLV-Net saved with ``save_pretrained`` (loaded back through the real code path)."""
    return make_scripted_checkpoint(tmp_path_factory.mktemp("demo-ckpt") / "tiny")


@pytest.fixture(scope="session")
def gcg_predictor(tiny_checkpoint: Path) -> Any:
    """The real Predictor on the tiny checkpoint (CPU, greedy decoding). It takes questions: whether one reaches
    it is the demo service's decision, from the card each test gives the service."""
    from clvnet.inference.predictor import Predictor

    return Predictor.from_pretrained(tiny_checkpoint, device="cpu", accepts_questions=True)


class Server:
    """``server(predictor, max_boxes=4, card=None, **launch_kwargs) -> url`` builds and launches the app;
    ``server.apps`` holds the launched ``gr.Blocks`` (closed after the test)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.apps: list[Any] = []

    def __call__(self, predictor: Any, max_boxes: int = 4, card: Any = None, **kwargs: Any) -> str:
        from clvnet.demo import build_app, launch_app

        demo = build_app(predictor, max_boxes=max_boxes, workdir=self.workdir / f"app{len(self.apps)}", card=card)
        port = free_port()
        launch_app(demo, host="127.0.0.1", port=port, block=False, **kwargs)
        self.apps.append(demo)
        return f"http://127.0.0.1:{port}/"


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Server]:
    """A :class:`Server` on free loopback ports; every app it launched is closed afterwards."""
    server = Server(tmp_path)
    yield server
    for demo in server.apps:
        demo.close()


@pytest.fixture
def browser_page() -> Iterator[Any]:
    """A Playwright page in headless Debian Chromium with a fresh profile (skips if Chromium is absent)."""
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"{CHROMIUM} not found: run scripts/ci_browser_setup.sh")
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="clvnet-chromium-")
    try:
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
                viewport={"width": 1400, "height": 1100})
            try:
                yield context.pages[0] if context.pages else context.new_page()
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
