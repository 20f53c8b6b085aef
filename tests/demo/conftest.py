"""Fixtures for the demo tests: a served app on a free loopback port, and a headless Chromium.

The browser is Debian's ``/usr/bin/chromium`` (``scripts/ci_browser_setup.sh`` installs it), driven by
Playwright from PyPI; no test ever lets Playwright download a browser of its own.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts"
CHROMIUM = os.environ.get("CLVNET_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """``serve(predictor, **launch_kwargs) -> url``: build and launch the app; closed after the test."""
    from clvnet.demo import build_app, launch_app

    apps: list[Any] = []

    def _serve(predictor: Any, max_boxes: int = 4, **kwargs: Any) -> str:
        demo = build_app(predictor, max_boxes=max_boxes, workdir=tmp_path / "demo-work")
        port = free_port()
        launch_app(demo, host="127.0.0.1", port=port, block=False, **kwargs)
        apps.append(demo)
        return f"http://127.0.0.1:{port}/"

    yield _serve
    for demo in apps:
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
