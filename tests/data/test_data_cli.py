"""`clvnet data ...` through the real CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from datahelpers import make_record
from PIL import Image

from clvnet.cli import main
from clvnet.data import rle
from clvnet.data.record import read_jsonl, write_jsonl
from clvnet.viz import phrase_colors

REF = Path("/work/shared/reference/geopixeld")
needs_ref = pytest.mark.skipif(not (REF / "GeoPixelD-list-sample.json").is_file(), reason="no reference data")


@needs_ref
def test_convert_geopixeld_with_and_without_boxes(tmp_path: Path) -> None:
    out = tmp_path / "out" / "gp.jsonl"
    src = str(REF / "GeoPixelD-list-sample.json")
    assert main(["data", "convert", "geopixeld", "--src", src, "--out", str(out), "--seed", "3"]) == 0
    first = out.read_bytes()
    (rec,) = read_jsonl(out, validate_records=True)
    assert rec.box is not None and not Path(rec.image).is_absolute()
    assert rec.image_path(out.parent).resolve() == (REF / "P0224_0_800_0_800.png").resolve()
    assert rec.meta["derived_box"]["seed"] == 3
    # deterministic per seed
    assert main(["data", "convert", "geopixeld", "--src", src, "--out", str(out), "--seed", "3"]) == 0
    assert out.read_bytes() == first
    # box config overrides reach the derivation: one object only
    assert main(["data", "convert", "geopixeld", "--src", src, "--out", str(out), "--box-opt", "max_objects=1"]) == 0
    assert len(read_jsonl(out)[0].meta["derived_box"]["chosen"]) == 1
    assert main(["data", "convert", "geopixeld", "--src", src, "--out", str(out), "--no-derive-boxes"]) == 0
    (rec,) = read_jsonl(out)
    assert rec.box is None and len(rec.phrases) == 4
    # the converted masks are GeoPixel's own rasterisation: cv2.fillPoly on the int32 vertices
    polygons = json.loads((REF / "P0224_0_800_0_800.json").read_text())["polygons"]
    for p, group in zip(rec.phrases, polygons):
        ref = np.zeros((800, 800), np.uint8)
        for poly in group:
            cv2.fillPoly(ref, [np.array(poly, dtype=np.int32)], 1)
        assert np.array_equal(rle.union(p.masks, 800, 800), ref)


def test_convert_bad_box_option_names_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_record(tmp_path, "a")
    gcg = [{"file_name": "a.png", "caption": "one car", "groundings": {
        "car": {"token_positives": [4, 7], "rle_masks": make_record(tmp_path, "a").phrases[0].masks}}}]
    (tmp_path / "g.json").write_text(json.dumps(gcg))
    rc = main(["data", "convert", "grandf", "--src", str(tmp_path / "g.json"), "--out", str(tmp_path / "o.jsonl"),
               "--box-opt", "max_objectz=2"])
    assert rc == 2 and "max_objectz" in capsys.readouterr().err
    rc = main(["data", "convert", "grandf", "--src", str(tmp_path / "g.json"), "--out", str(tmp_path / "o.jsonl")])
    assert rc == 0
    (rec,) = read_jsonl(tmp_path / "o.jsonl", validate_records=True)
    assert rec.phrases[0].text == "car" and rec.box is not None


def test_show_renders_masks_and_legend(tmp_path: Path) -> None:
    write_jsonl([make_record(tmp_path, "a")], tmp_path / "d.jsonl")
    png = tmp_path / "show" / "a.png"
    assert main(["data", "show", str(tmp_path / "d.jsonl"), "--index", "0", "--out", str(png)]) == 0
    im = np.asarray(Image.open(png).convert("RGB"))
    assert im.shape[0] > 60
    for c in phrase_colors(2):
        assert np.all(im == np.asarray(c, np.uint8), axis=-1).sum() > 10


def test_show_and_check_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_jsonl([make_record(tmp_path, "a")], tmp_path / "d.jsonl")
    assert main(["data", "check", str(tmp_path / "d.jsonl")]) == 0
    assert main(["data", "show", str(tmp_path / "d.jsonl"), "--index", "4", "--out", str(tmp_path / "x.png")]) == 2
    assert "no record with index 4" in capsys.readouterr().err
    (tmp_path / "a.png").unlink()
    assert main(["data", "check", str(tmp_path / "d.jsonl")]) == 2
    assert "a.png: image file not found" in capsys.readouterr().err


def test_synth_and_stats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("clvnet.data.synth")
    pytest.importorskip("clvnet.data.stats")
    out = tmp_path / "syn"
    assert main(["data", "synth", "--out", str(out), "--num", "2", "--seed", "1"]) == 0
    recs = read_jsonl(out / "records.jsonl", validate_records=True)
    assert len(recs) == 2 and recs[0].height == 256
    capsys.readouterr()
    assert main(["data", "stats", str(out)]) == 0
    assert capsys.readouterr().out.strip()
