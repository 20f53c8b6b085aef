"""The bad-input corpus (tests/data/bad/, written by scripts/make_bad_corpus.py) through every CLI entry point
that reads that kind of input: each run fails (exit code 2) within 10 s with a message that names the file
and the field (or line), and writes nothing.

Entry points per kind of input:

- records (``records/*.jsonl``): ``data check``, ``data show``, ``data stats``, ``eval`` (as GT and as
  predictions; a span mismatch is no error in predictions, which the evaluator reads by phrase text) and
  ``train`` (as ``data.train``);
- predict boxes (``boxes/*.jsonl``): ``predict --images --boxes``;
- configs (``config/*``): ``train --config`` / a ``train`` override, and ``predict`` with the file as a
  checkpoint's ``config.yaml``;
- a truncated weights file (``checkpoint/``): ``predict`` with it as the checkpoint's ``model.safetensors``
  (``train --resume`` on damaged checkpoints: tests/engine/test_resume_damaged.py);
- images (``images/*``): single-image ``predict``.

``eval`` runs in a subprocess: before RLE validation a malformed GT RLE hung pycocotools beyond Ctrl-C.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from testkit import make_scripted_checkpoint, run_cli

from clvnet.cli import main

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "tests" / "data" / "bad"
LIMIT_S = 10.0

RECORDS = {  # case -> what the message must name besides the file
    "rle_counts_short": ["record b", "field 'phrases[0].masks[0]'", "runs cover 668 pixels but the size 24x32 has 768"],
    "rle_counts_long": ["record b", "field 'phrases[0].masks[0]'", "runs cover 1268 pixels"],
    "rle_garbage": ["record b", "field 'phrases[0].masks[0]'", "outside the RLE alphabet"],
    "rle_size_mismatch": ["record b", "field 'phrases[0].masks[0]'", "RLE size 48x64 differs"],
    "invalid_utf8": ["line 2", "not valid UTF-8"],
    "not_json": ["line 2", "truncated"],
    "not_a_record": ["record b", "field 'height'", "missing key 'height'"],
    "span_mismatch": ["record b", "field 'phrases[1].span'"],
    "caption_too_long": ["record b", "field 'caption'", "at most 20000"],
    "too_many_phrases": ["record b", "field 'phrases'", "at most 256"],
}
NOT_A_PREDICTION_ERROR = {"span_mismatch"}
BOXES = {
    "id_parent_path": "path separator",
    "id_absolute_path": "path separator",
    "id_nul_byte": "control character",
    "id_duplicate": "unique",
    "id_not_a_string": "must be a string",
    "invalid_utf8": "not valid UTF-8",
}


def _in_process(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, float]:
    t0 = time.monotonic()
    rc = main(args)
    return rc, capsys.readouterr().err, time.monotonic() - t0


def _check(rc: int, err: str, seconds: float, names: list[str]) -> None:
    assert rc == 2, f"exit code {rc}: {err[-800:]}"
    assert "Traceback" not in err, err[-800:]
    missing = [n for n in names if n not in err]
    assert not missing, f"message lacks {missing}: {err[-800:]}"
    assert seconds < LIMIT_S, f"took {seconds:.1f} s"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_scripted_checkpoint(tmp_path_factory.mktemp("bad-ckpt") / "tiny")


def test_the_script_writes_this_corpus(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "scripts/make_bad_corpus.py", "--out", str(tmp_path)], cwd=REPO, env=env,
                   check=True, capture_output=True, timeout=120)
    made = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    kept = sorted(p.relative_to(CORPUS) for p in CORPUS.rglob("*") if p.is_file())
    assert made == kept
    for rel in made:
        if rel.suffix == ".png" and rel.name == "scene.png":  # PNG bytes depend on zlib: compare pixels
            assert np.array_equal(np.asarray(Image.open(tmp_path / rel)), np.asarray(Image.open(CORPUS / rel)))
        else:
            assert (tmp_path / rel).read_bytes() == (CORPUS / rel).read_bytes(), rel


@pytest.mark.parametrize("case", sorted(RECORDS))
def test_record_cases(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = CORPUS / "records" / f"{case}.jsonl"
    good = CORPUS / "records" / "good.jsonl"
    names = [f"{case}.jsonl", *RECORDS[case]]
    runs: list[tuple[str, Callable[[], tuple[int, str, float]]]] = [
        ("data check", lambda: _in_process(["data", "check", str(path)], capsys)),
        ("data show", lambda: _in_process(["data", "show", str(path), "--index", "1", "--out",
                                           str(tmp_path / "show.png")], capsys)),
        ("data stats", lambda: _in_process(["data", "stats", str(path)], capsys)),
        ("eval --gt", lambda: run_cli(["eval", "--gt", str(path), "--pred", str(good), "--no-java",
                                       "--out", str(tmp_path / "m.json")], timeout=60)),
        ("train", lambda: _in_process(["train", "--config", "tiny_synthrs", f"data.train={path}", "data.val=null",
                                       "data.num_workers=0", "train.max_steps=1", "train.progress=false",
                                       f"output_dir={tmp_path / 'run'}"], capsys)),
    ]
    if case not in NOT_A_PREDICTION_ERROR:
        runs.append(("eval --pred", lambda: run_cli(["eval", "--gt", str(good), "--pred", str(path), "--no-java",
                                                      "--out", str(tmp_path / "m.json")], timeout=60)))
    for entry, run in runs:
        rc, err, seconds = run()
        try:
            _check(rc, err, seconds, names)
        except AssertionError as exc:
            raise AssertionError(f"{entry}: {exc}") from None
    assert not [p for p in tmp_path.rglob("*") if p.is_file()], "something was written"


@pytest.mark.parametrize("case", sorted(BOXES))
def test_predict_boxes_cases(case: str, checkpoint: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    path = CORPUS / "boxes" / f"{case}.jsonl"
    before = {p: p.stat().st_mtime for p in Path("/tmp").glob("clvnet-escaped*")}
    rc, err, seconds = _in_process(["predict", "--images", str(CORPUS / "boxes" / "scene.png"), "--boxes", str(path),
                                    "--checkpoint", str(checkpoint), "--out", str(tmp_path / "out"),
                                    "--device", "cpu"], capsys)
    field = [] if case == "invalid_utf8" else ["field 'id'"]
    _check(rc, err, seconds, [f"{case}.jsonl", "line 2", *field, BOXES[case]])
    assert not (tmp_path / "out").exists()
    assert {p: p.stat().st_mtime for p in Path("/tmp").glob("clvnet-escaped*")} == before  # nothing written there
    assert not list(tmp_path.parent.glob("escaped*"))  # where '../../escaped' from tmp_path/out would land


def test_config_cases(checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    syntax = CORPUS / "config" / "yaml_syntax.yaml"
    _check(*_in_process(["train", "--config", str(syntax)], capsys),
           ["yaml_syntax.yaml", "not valid YAML", "at line 2, column 6"])
    override = (CORPUS / "config" / "override_yaml_syntax.txt").read_text().strip()
    _check(*_in_process(["train", "--config", "tiny_synthrs", override], capsys),
           [f"override {override!r}", "not valid YAML", "line 1, column 4"])
    plain = CORPUS / "config" / "config_plain_string.yaml"
    _check(*_in_process(["train", "--config", str(plain)], capsys),
           ["config_plain_string.yaml", "top level must be a mapping, got str"])
    ckpt = tmp_path / "ckpt"
    shutil.copytree(checkpoint, ckpt)
    shutil.copy(plain, ckpt / "config.yaml")
    _check(*_in_process(["predict", str(CORPUS / "boxes" / "scene.png"), "--box", "1", "1", "9", "9",
                         "--checkpoint", str(ckpt), "--device", "cpu"], capsys),
           [f"--checkpoint {ckpt}", "config.yaml must be a mapping"])


def test_truncated_weights(checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = tmp_path / "ckpt"
    shutil.copytree(checkpoint, ckpt)
    shutil.copy(CORPUS / "checkpoint" / "model_truncated.safetensors", ckpt / "model.safetensors")
    _check(*_in_process(["predict", str(CORPUS / "boxes" / "scene.png"), "--box", "1", "1", "9", "9",
                         "--checkpoint", str(ckpt), "--device", "cpu"], capsys),
           [f"--checkpoint {ckpt}", "model.safetensors is truncated or corrupt"])


@pytest.mark.parametrize(("name", "message"), [("header_60000_truncated.tif", "truncated or corrupt"),
                                               ("not_an_image.png", "cannot read image")])
def test_image_cases(name: str, message: str, checkpoint: Path, tmp_path: Path,
                     capsys: pytest.CaptureFixture[str]) -> None:
    _check(*_in_process(["predict", str(CORPUS / "images" / name), "--box", "1", "1", "9", "9", "--checkpoint",
                         str(checkpoint), "--device", "cpu", "--out", str(tmp_path / "out")], capsys), [name, message])
    assert not (tmp_path / "out").exists()
