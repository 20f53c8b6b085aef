"""``clvnet predict`` batch ids: never a path, never a duplicate, all checked before anything is written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clvnet.cli import main

FAST = ["--max-new-tokens", "8", "--device", "cpu", "--format", "json"]


@pytest.fixture
def images(tmp_path: Path) -> Path:
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(folder / name)
    return folder


def _predict(tmp_path: Path, images: Path, ckpt: Path, lines: list[dict[str, object]]) -> tuple[int, Path]:
    boxes = tmp_path / "boxes.jsonl"
    boxes.write_text("".join(json.dumps(d) + "\n" for d in lines))
    out = tmp_path / "run" / "out"
    rc = main(["predict", "--images", str(images), "--boxes", str(boxes), "--checkpoint", str(ckpt),
               "--out", str(out), *FAST])
    return rc, out


def _written(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.suffix == ".json"
                  and p.name != "boxes.jsonl")


@pytest.mark.parametrize(("ident", "reason"), [
    ("../../escaped", "path separator"),
    ("<tmp>/abs/escaped", "path separator"),       # an absolute path inside the test's folder
    ("..", "not a file name"),
    ("sub\\dir", "path separator"),
    ("a\u0000b", "control character"),
    ("line\nbreak", "control character"),
    ("x" * 201, "at most 200 bytes"),
    (["list"], "must be a string"),
])
def test_unsafe_ids_are_refused_before_anything_is_written(tmp_path: Path, images: Path, tiny_checkpoint: Path,
                                                           ident: object, reason: str,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    box = [4, 4, 40, 40]
    if isinstance(ident, str):
        ident = ident.replace("<tmp>", str(tmp_path))
    rc, out = _predict(tmp_path, images, tiny_checkpoint, [
        {"image": "a.png", "box": box, "id": "fine"},
        {"image": "b.png", "box": box, "id": ident},
    ])
    err = capsys.readouterr().err
    assert rc == 2
    assert "boxes.jsonl" in err and "line 2" in err and "field 'id'" in err and reason in err, err
    assert _written(tmp_path) == []          # not even the good id's files
    assert not out.exists()


def test_duplicate_ids_are_an_error_naming_both_lines(tmp_path: Path, images: Path, tiny_checkpoint: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    box = [4, 4, 40, 40]
    rc, out = _predict(tmp_path, images, tiny_checkpoint, [
        {"image": "a.png", "box": box, "id": "dup"},
        {"image": "b.png", "box": box, "id": "DUP"},
    ])
    err = capsys.readouterr().err
    assert rc == 2 and "line 1 and line 2" in err and "unique" in err, err
    assert not out.exists()
    # a line's own boxes get _box<k>; a clash with another line's id is caught too
    rc, out = _predict(tmp_path, images, tiny_checkpoint, [
        {"image": "a.png", "boxes": [box, [8, 8, 30, 30]], "id": "car"},
        {"image": "b.png", "box": box, "id": "car_box1"},
    ])
    assert rc == 2 and "line 1 box 1 and line 2" in capsys.readouterr().err


def test_safe_ids_name_the_files_inside_out(tmp_path: Path, images: Path, tiny_checkpoint: Path) -> None:
    box = [4, 4, 40, 40]
    rc, out = _predict(tmp_path, images, tiny_checkpoint, [
        {"image": "a.png", "box": box, "id": "scene 1 (north).v2"},
        {"image": "b.png", "box": box, "id": 17},
    ])
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == ["17.json", "scene 1 (north).v2.json"]
    assert _written(tmp_path) == ["run/out/17.json", "run/out/scene 1 (north).v2.json"]


def test_writers_refuse_a_path_as_id(tmp_path: Path, images: Path, tiny_checkpoint: Path) -> None:
    """Python users who pass their own ids to the Predictor get the same check from the writers."""
    from clvnet.data.record import DataError
    from clvnet.inference import outputs
    from clvnet.inference.predictor import Predictor

    predictor = Predictor.from_pretrained(tiny_checkpoint, device="cpu", max_new_tokens=8)
    (pred,) = predictor.predict(images / "a.png", [[4, 4, 40, 40]], ids=["../escaped"])
    with predictor.open(images / "a.png") as raster, pytest.raises(DataError, match="path separator"):
        outputs.write_outputs(pred, raster, tmp_path / "out", ["json", "png"])
    assert not list(tmp_path.rglob("*escaped*"))
