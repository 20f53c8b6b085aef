"""End to end through ``clvnet.cli.main``: PNG, georeferenced 16-bit 4-band GeoTIFF, the real aerial image,
batch mode, and every bad-input error."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clvnet.cli import main
from clvnet.data import rle
from clvnet.data.record import GCGRecord, validate

FAST = ["--max-new-tokens", "16", "--device", "cpu"]


def _scene(h: int = 120, w: int = 160) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    img = np.stack([(xx * 255 // w), (yy * 255 // h), ((xx + yy) % 64) * 4], axis=-1).astype(np.uint8)
    img[40:60, 50:90] = (200, 30, 30)
    return img


@pytest.fixture
def png(tmp_path: Path) -> Path:
    path = tmp_path / "scene.png"
    Image.fromarray(_scene()).save(path)
    return path


@pytest.fixture
def geotiff(tmp_path: Path, write_geotiff: Callable[..., Path]) -> Path:
    """A 16-bit, 4-band scene in UTM 33N with 0.5 m pixels."""
    rgb = _scene(96, 128).astype(np.uint16) * 16 + 1000
    nir = (rgb[..., 1] // 2 + 3000)[None]
    data = np.concatenate([np.moveaxis(rgb, -1, 0), nir]).astype(np.uint16)
    return write_geotiff(tmp_path / "scene.tif", data, crs="EPSG:32633", pixel=0.5)


def test_png_outputs(png: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    rc = main(["predict", str(png), "--checkpoint", str(tiny_checkpoint), "--box", "10", "20", "70", "90",
               "--box", "80", "10", "150", "100", "--out", str(out), "--format", "json,png,glamm,geojson", *FAST])
    assert rc == 0
    for k in (0, 1):
        rec = GCGRecord.from_dict(json.loads((out / f"scene_box{k}.json").read_text()))
        validate(rec)  # spans match, one full-resolution RLE per phrase
        assert (rec.height, rec.width) == (120, 160)
        assert rec.caption == "A scene! The car parked."
        assert [p.text for p in rec.phrases] == ["car"]
        assert rec.meta["global_caption"] == "A scene!" and rec.meta["local_caption"] == "The car parked."
        assert len(rec.meta["scores"]) == 1
        glamm = json.loads((out / "glamm" / f"scene_box{k}.json").read_text())
        assert glamm["image_id"] == f"scene_box{k}" and glamm["phrases"] == ["car"]
        assert glamm["pred_masks"][0] == rec.phrases[0].masks[0]
        overlay = Image.open(out / f"scene_box{k}.png")
        assert overlay.width >= 160 and overlay.height > 120  # image plus caption panel
    assert rec.box == (80.0, 10.0, 150.0, 100.0)
    assert not list(out.glob("*.geojson"))  # not georeferenced: no GeoJSON (warned)


def test_stdout_caption(png: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["predict", str(png), "--checkpoint", str(tiny_checkpoint), "--box", "10", "20", "70", "90", *FAST])
    assert rc == 0
    text = capsys.readouterr().out
    assert "The [0: car] parked." in text and "global: A scene!" in text


def test_geotiff_geojson_areas(geotiff: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    from shapely.geometry import shape

    out = tmp_path / "geo"
    rc = main(["predict", str(geotiff), "--checkpoint", str(tiny_checkpoint), "--box", "20", "10", "90", "70",
               "--out", str(out), "--format", "json,geojson", "--simplify", "0", *FAST])
    assert rc == 0
    rec = GCGRecord.from_dict(json.loads((out / "scene_box0.json").read_text()))
    assert rec.meta["bands"] == [1, 2, 3]  # no colour interpretation: the first three
    gj = json.loads((out / "scene_box0.geojson").read_text())
    assert gj["type"] == "FeatureCollection" and gj["crs"]["properties"]["name"] == "urn:ogc:def:crs:EPSG::32633"
    assert len(gj["features"]) == len(rec.phrases) == 1
    for feat, phrase in zip(gj["features"], rec.phrases):
        pixels = rle.area(phrase.masks[0])
        assert pixels > 0
        geom = shape(feat["geometry"])
        assert feat["geometry"]["type"] == "MultiPolygon"
        assert geom.area == pytest.approx(pixels * 0.25)  # 0.5 m pixels
        assert feat["properties"]["area_m2"] == pytest.approx(pixels * 0.25)
        assert feat["properties"]["phrase"] == phrase.text and feat["properties"]["span"] == list(phrase.span)
        assert feat["properties"]["caption"] == rec.caption
        # every polygon lies inside the raster footprint
        minx, miny, maxx, maxy = geom.bounds
        assert minx >= 500000.0 and maxx <= 500000.0 + 128 * 0.5
        assert miny >= 4650000.0 - 96 * 0.5 and maxy <= 4650000.0


def test_geotiff_map_box_bands_and_reprojection(geotiff: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "geo"
    # pixel box (20, 10, 90, 70) in map units of the raster
    rc = main(["predict", str(geotiff), "--checkpoint", str(tiny_checkpoint), "--box-crs", "EPSG:32633",
               "--box", "500010", "4649965", "500045", "4649995", "--bands", "4,2,1", "--geojson-crs", "EPSG:4326",
               "--out", str(out), "--format", "json,geojson,png", *FAST])
    assert rc == 0
    rec = json.loads((out / "scene_box0.json").read_text())
    assert rec["box"] == pytest.approx([20.0, 10.0, 90.0, 70.0])
    assert rec["meta"]["bands"] == [4, 2, 1] and rec["meta"]["box_crs"] == "EPSG:32633"
    gj = json.loads((out / "scene_box0.geojson").read_text())
    assert gj["crs"]["properties"]["name"].endswith("CRS84")
    lon, lat = gj["features"][0]["geometry"]["coordinates"][0][0][0]
    assert 14.0 < lon < 16.0 and 41.0 < lat < 43.0


def test_real_aerial_image(example_png: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "real"
    rc = main(["predict", str(example_png), "--checkpoint", str(tiny_checkpoint), "--box", "300", "250", "560",
               "500", "--out", str(out), "--format", "json,png", *FAST])
    assert rc == 0
    rec = GCGRecord.from_dict(json.loads((out / "example1_box0.json").read_text()))
    validate(rec)
    assert (rec.height, rec.width) == (800, 800)
    assert Image.open(out / "example1_box0.png").width >= 800


def test_batch_mode_reports_failures_and_continues(png: Path, geotiff: Path, tiny_checkpoint: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    boxes = tmp_path / "boxes.jsonl"
    boxes.write_text("\n".join(json.dumps(d) for d in [
        {"image": "scene.png", "boxes": [[10, 20, 70, 90], [80, 10, 150, 100]]},
        {"image": "scene.tif", "box": [20, 10, 90, 70], "id": "tif"},
        {"image": "broken.png", "box": [0, 0, 5, 5]},
        {"image": "missing.png", "box": [0, 0, 5, 5]},
    ]) + "\n")
    out = tmp_path / "batch"
    rc = main(["predict", "--images", str(tmp_path / "*.*"), "--boxes", str(boxes), "--checkpoint",
               str(tiny_checkpoint), "--out", str(out), "--format", "json", *FAST])
    assert rc == 1
    err = capsys.readouterr().err
    assert "FAILED" in err and "broken.png" in err and "2 of 4 image(s) done, 2 failed" in err
    assert "'missing.png' is not among --images" in err
    assert sorted(p.name for p in out.glob("*.json")) == ["scene_box0.json", "scene_box1.json", "tif.json"]


@pytest.mark.parametrize(("args", "message"), [
    (["--box", "200", "10", "300", "50"], r"--box #1 .*outside the 160x120 image scene\.png"),
    (["--box", "100", "10", "170", "50"], r"--box #1 .*extends past the 160x120 image"),
    (["--box", "10", "10", "10", "50"], r"--box #1 .*zero area"),
    (["--box", "1", "1", "5", "5", "--box-crs", "EPSG:32633"], r"--box-crs EPSG:32633: image scene\.png is not georeferenced"),
    (["--box", "1", "1", "5", "5", "--bands", "4,2,1"], r"--bands 4,2,1: band\(s\) \[4\] out of range for scene\.png"),
    (["--box", "1", "1", "5", "5", "--format", "json,kml"], r"--format 'json,kml': unknown format"),
    (["--box", "1", "1", "5", "5", "--boxes", "b.jsonl"], r"--boxes is for batch mode"),
    (["--box", "1", "1", "5", "5", "--simplify", "-1"], r"--simplify -1.0: the tolerance must be >= 0"),
    ([], r"--box x0 y0 x1 y1 is required"),
])
def test_bad_arguments(png: Path, tiny_checkpoint: Path, args: list[str], message: str,
                       capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["predict", str(png), "--checkpoint", str(tiny_checkpoint), *args, *FAST])
    assert rc == 2
    import re

    assert re.search(message, capsys.readouterr().err), message


def test_pillow_limit_without_rasterio(png: Path, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 4000)  # the 160x120 scene is "too large" for Pillow
    rc = main(["predict", str(png), "--checkpoint", str(tiny_checkpoint), "--box", "1", "1", "9", "9",
               "--no-rasterio", *FAST])
    assert rc == 2
    err = capsys.readouterr().err
    assert "scene.png" in err and "decompression-bomb limit" in err and "rasterio" in err


def test_bad_files(png: Path, tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "corrupt.tif"
    bad.write_bytes(b"II*\x00garbage")
    assert main(["predict", str(bad), "--checkpoint", str(tiny_checkpoint), "--box", "0", "0", "1", "1", *FAST]) == 2
    assert "corrupt.tif" in capsys.readouterr().err
    partial = tmp_path / "partial_ckpt"
    partial.mkdir()
    (partial / "config.yaml").write_text((tiny_checkpoint / "config.yaml").read_text())
    assert main(["predict", str(png), "--checkpoint", str(partial), "--box", "0", "0", "9", "9", *FAST]) == 2
    err = capsys.readouterr().err
    assert "partial_ckpt" in err and "model.safetensors" in err and "tokenizer/" in err
