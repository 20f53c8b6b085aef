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
import socket
import tempfile
from collections.abc import Iterator
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


SCRIPT = ["A", " scene", "!", " The", "<p>", " car", "</p>", "[SEG]", " parked", "."]
CAPTIONS = ["A scene! The <p> car </p> [SEG] parked. A road with <p> trees </p> [SEG] near water."] * 4


def script_llm(model: Any, script: list[str]) -> None:
    """Set the tiny LLM's weights so that greedy decoding emits ``script`` and then EOS.

    Block outputs are zeroed (the last hidden state is the token's embedding), embeddings are one-hot
    codes, and the LM head maps script token k's code to token k + 1 (others to the first token).
    """
    import torch

    tok = model.tokenizer
    vocab = tok.get_vocab()
    ids = []
    for piece in script:
        enc = tok.convert_tokens_to_ids(piece) if piece in vocab else None
        if enc is None or enc == tok.unk_token_id:
            toks = tok.encode(piece, add_special_tokens=False)
            if len(toks) != 1:
                raise ValueError(f"script piece {piece!r} is not one token: {toks}")
            enc = toks[0]
        ids.append(int(enc))
    if len(set(ids)) != len(ids):
        raise ValueError("script tokens must be distinct")
    llm = model.reasoner.llm
    with torch.no_grad():
        for name, p in llm.named_parameters():
            if name.endswith(("o_proj.weight", "down_proj.weight")):
                p.zero_()
        emb, head = llm.get_input_embeddings().weight, llm.get_output_embeddings().weight
        if len(ids) + 1 > emb.shape[1]:
            raise ValueError("script longer than the hidden size")
        emb.zero_()
        emb[:, 0] = 1.0
        head.zero_()
        head[ids[0], 0] = 10.0
        for k, t in enumerate(ids):
            emb[t].zero_()
            emb[t, k + 1] = 1.0
            head[ids[k + 1] if k + 1 < len(ids) else tok.eos_token_id, k + 1] = 10.0


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny scripted CLV-Net saved with ``save_pretrained`` (loaded back through the real code path)."""
    import torch

    from clvnet.models.builder import build_model
    from clvnet.models.config import CLVNetConfig

    torch.manual_seed(0)
    model = build_model(CLVNetConfig(), captions=CAPTIONS)
    script_llm(model, SCRIPT)
    out = tmp_path_factory.mktemp("demo-ckpt") / "tiny"
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def gcg_predictor(tiny_checkpoint: Path) -> Any:
    """The real Predictor on the tiny checkpoint (CPU, greedy decoding)."""
    from clvnet.inference.predictor import Predictor

    return Predictor.from_pretrained(tiny_checkpoint, device="cpu")


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``server(predictor, max_boxes=4, **launch_kwargs) -> url`` builds and launches the app;
    ``server.apps`` holds the launched ``gr.Blocks`` (closed after the test)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.apps: list[Any] = []

    def __call__(self, predictor: Any, max_boxes: int = 4, **kwargs: Any) -> str:
        from clvnet.demo import build_app, launch_app

        demo = build_app(predictor, max_boxes=max_boxes, workdir=self.workdir / f"app{len(self.apps)}")
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
