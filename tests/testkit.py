"""Shared test helpers: a deterministic tiny CLV-Net (real modules, scripted language model) and a free port.

An untrained model never emits ``[SEG]``, so it gives no phrases or masks to check. ``script_llm`` sets the
tiny LLM's weights so that greedy decoding always writes :data:`SCRIPT` (then EOS); the vision, region,
CGFormer and mask-decoder weights stay random. The checkpoint goes through ``save_pretrained`` and is loaded
back by the tests through the same code path that real weights use.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from clvnet.data.rle import counts_to_string

SCRIPT = ["A", " scene", "!", " The", " ", "<p>", " car", "</p>", "[SEG]", " parked", "."]
CAPTIONS = ["A scene! The <p> car </p> [SEG] parked. A road with <p> trees </p> [SEG] near water."] * 4


def script_llm(model: Any, script: list[str]) -> None:
    """Make the tiny LLM emit ``script`` (then EOS) whatever the input.

    Every transformer block's output projections are zeroed, so the last hidden state is the current
    token's embedding. Embeddings are one-hot codes and the LM head maps the code of script token k to
    token k + 1 (every other token maps to the first script token), so greedy decoding follows the script.
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
        emb[:, 0] = 1.0  # every token not in the script: code 0
        head.zero_()
        head[ids[0], 0] = 10.0
        for k, t in enumerate(ids):
            emb[t].zero_()
            emb[t, k + 1] = 1.0
            head[ids[k + 1] if k + 1 < len(ids) else tok.eos_token_id, k + 1] = 10.0


def make_scripted_checkpoint(out: Path, script: list[str] = SCRIPT) -> Path:
    """Build the tiny preset, script its LLM, ``save_pretrained`` it to ``out`` and return ``out``."""
    import torch

    from clvnet.models.build import build_model, save_pretrained
    from clvnet.models.config import CLVNetConfig

    torch.manual_seed(0)
    model = build_model(CLVNetConfig(), captions=CAPTIONS)
    script_llm(model, script)
    save_pretrained(model, out)
    return out


def question_card() -> Any:
    """A model card that says the model was trained with questions (so the demo sends them on)."""
    from clvnet.models.card import ModelCard

    return ModelCard(data_name="test", trained_with_questions=True)


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


rle_string = counts_to_string   # the shorter name the tests use


def run_cli(args: list[str], timeout: float = 60.0, cwd: Path | None = None) -> tuple[int, str, float]:
    """Run ``python -m clvnet ARGS`` in a subprocess, for code that could hang (a hang inside a C extension
    ignores Ctrl-C, so it cannot run in the test process). Returns ``(exit code, stderr, seconds)``; a run past
    ``timeout`` is killed and fails the test."""
    import subprocess
    import sys
    import time

    import pytest

    t0 = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, "-m", "clvnet", *args], capture_output=True, text=True,
                              timeout=timeout, cwd=cwd)
    except subprocess.TimeoutExpired:
        pytest.fail(f"clvnet {' '.join(args)} still ran after {timeout:.0f} s (hang?)")
    return proc.returncode, proc.stderr, time.monotonic() - t0
