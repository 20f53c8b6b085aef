"""Archive runs end to end through ``clvnet.cli.main``: scenes x (vector | grid | boxes) -> predictions.gpkg."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import AOI, FAST, PIXEL, read_layer, write_geojson, write_scenes

from clvnet.cli import main


def _run(scenes: Path | str, ckpt: Path, out: Path, *args: str) -> int:
    return main(["predict", "--images", str(scenes), "--checkpoint", str(ckpt), "--out", str(out), *args, *FAST])


def test_vector_in_another_crs_to_geopackage(scenes: Path, aoi: Path, tiny_checkpoint: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert _run(scenes, tiny_checkpoint, out, "--vector", str(aoi), "--simplify", "0") == 0
    err = capsys.readouterr().err
    assert "3 feature(s) -> 3 (raster, box) pair(s); 2 across a raster edge, 1 on no raster" in err
    assert "feature far: on no raster: skipped" in err
    report = [json.loads(line) for line in (out / "vector_report.jsonl").read_text().splitlines()]
    assert sorted((r["feature_id"], r["kind"], r["action"]) for r in report) == [
        ("far", "off", "skipped"), ("port-2", "edge", "clipped"), ("port-2", "edge", "clipped")]

    import pyogrio

    gpkg = out / "predictions.gpkg"
    assert [list(x) for x in pyogrio.list_layers(gpkg)] == [["boxes", "Polygon"], ["phrases", "MultiPolygon"]]
    meta, geoms, cols = read_layer(gpkg, "boxes")
    assert meta["crs"] == "EPSG:32633"  # the first raster's
    by_id = {b: i for i, b in enumerate(cols["box_id"])}
    assert sorted(by_id) == ["a_port-1", "a_port-2", "b_port-2"]
    assert list(cols["feature_id"][[by_id["a_port-2"], by_id["b_port-2"]]]) == ["port-2", "port-2"]
    assert cols["clipped"].tolist() == [b != "a_port-1" for b in cols["box_id"]]
    assert {Path(r).name for r in cols["raster"]} == {"a.tif", "b.tif"}
    assert all(c == "A scene! The car parked." for c in cols["caption"])
    assert all(re.fullmatch(r"ckpt\d*-[0-9a-f]{12}|tiny-[0-9a-f]{12}", c) for c in cols["checkpoint"])
    assert (cols["t_total"] > 0).all()
    # port-1's box, through lon/lat and back: its UTM rectangle (the reprojected bounds are a little larger)
    x0, y0, x1, y1 = geoms[by_id["a_port-1"]].bounds
    ax0, ay0, ax1, ay1 = AOI["port-1"]
    assert x0 <= ax0 + 1e-6 and y0 <= ay0 + 1e-6 and x1 >= ax1 - 1e-6 and y1 >= ay1 - 1e-6
    assert (x1 - x0) * (y1 - y0) < 1.05 * (ax1 - ax0) * (ay1 - ay0)
    # the clipped halves of port-2 meet at the a|b edge
    assert geoms[by_id["a_port-2"]].bounds[2] == pytest.approx(500064.0)
    assert geoms[by_id["b_port-2"]].bounds[0] == pytest.approx(500064.0)

    pmeta, pgeoms, pcols = read_layer(gpkg, "phrases")
    assert pmeta["crs"] == "EPSG:32633" and len(pgeoms) == 3
    assert set(pcols["box_id"]) == set(by_id) and set(pcols["phrase"]) == {"car"}
    assert (pcols["span_start"] == 13).all() and (pcols["span_end"] == 16).all()
    assert (pcols["area_px"] > 0).all()
    np.testing.assert_allclose(pcols["area_m2"], pcols["area_px"] * PIXEL * PIXEL)
    np.testing.assert_allclose([g.area for g in pgeoms], pcols["area_m2"])  # --simplify 0: exact pixel edges
    for g, box_id in zip(pgeoms, pcols["box_id"]):  # each mask lies on its own scene
        scene_x0 = 500000.0 if box_id.startswith("a_") else 500064.0
        assert g.geom_type == "MultiPolygon" and scene_x0 <= g.bounds[0] and g.bounds[2] <= scene_x0 + 64.0


def test_output_crs_and_parquet(scenes: Path, aoi: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _run(scenes, tiny_checkpoint, out, "--vector", str(aoi), "--edge", "skip", "--crs", "EPSG:4326",
                "--format", "gpkg,parquet,json") == 0
    meta, geoms, cols = read_layer(out / "predictions.gpkg", "boxes")
    assert meta["crs"] == "EPSG:4326" and cols["box_id"].tolist() == ["a_port-1"]  # port-2 skipped at the edge
    lon, lat = geoms[0].centroid.x, geoms[0].centroid.y
    assert 14.0 < lon < 16.0 and 41.0 < lat < 43.0
    _, pgeoms, pcols = read_layer(out / "predictions.gpkg", "phrases")
    np.testing.assert_allclose(pcols["area_m2"], pcols["area_px"] * PIXEL * PIXEL)  # still the raster's metres
    assert (out / "boxes" / "a_port-1.json").is_file()  # today's per-box record as well

    import pyarrow.parquet as pq
    import shapely

    table = pq.read_table(out / "predictions_phrases.parquet")
    geo = json.loads(table.schema.metadata[b"geo"])
    assert geo["primary_column"] == "geometry" and geo["columns"]["geometry"]["encoding"] == "WKB"
    assert geo["columns"]["geometry"]["crs"]["id"] == {"authority": "EPSG", "code": 4326}
    assert table.column("box_id").to_pylist() == pcols["box_id"].tolist()
    assert shapely.from_wkb(table.column("geometry").to_pylist()[0]).equals(pgeoms[0])
    assert pq.read_table(out / "predictions_boxes.parquet").num_rows == 1


def test_grid_from_list_file_then_resume_and_merge(scenes: Path, tiny_checkpoint: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    listing = tmp_path / "scenes.txt"
    listing.write_text("# two scenes\nscenes/a.tif\n\nscenes/b.tif\n")
    out = tmp_path / "out"
    assert _run(listing, tiny_checkpoint, out, "--grid", "64") == 0
    _, geoms, cols = read_layer(out / "predictions.gpkg", "boxes")
    assert sorted(cols["box_id"]) == sorted(f"{s}_x{x}_y{y}" for s in "ab" for x in (0, 64) for y in (0, 64))
    assert all(g.area == pytest.approx(32.0 * 32.0) for g in geoms)  # 64 px tiles of 0.5 m
    capsys.readouterr()
    # the same command again predicts nothing
    assert _run(listing, tiny_checkpoint, out, "--grid", "64") == 0
    assert "8 (raster, box) pair(s) on 2 raster(s); 8 already done" in capsys.readouterr().err
    # a run killed mid-write: two finished lines lost, a torn line left behind
    part = out / "parts" / "rank0.jsonl"
    lines = part.read_bytes().splitlines(keepends=True)
    part.write_bytes(b"".join(lines[:6]) + lines[6][:40])
    (out / "predictions.gpkg").unlink()
    assert _run(listing, tiny_checkpoint, out, "--grid", "64") == 0
    assert "6 already done" in capsys.readouterr().err
    _, _, cols = read_layer(out / "predictions.gpkg", "boxes")
    assert sorted(cols["box_id"]) == sorted(set(cols["box_id"])) and len(cols["box_id"]) == 8
    # merge later, from the parts alone
    (out / "predictions.gpkg").unlink()
    assert main(["predict", "merge", str(out), "--format", "gpkg,parquet"]) == 0
    _, _, merged = read_layer(out / "predictions.gpkg", "boxes")
    assert sorted(merged["box_id"]) == sorted(cols["box_id"])
    assert (out / "predictions_boxes.parquet").is_file()
    # another job in the same folder is refused
    assert _run(listing, tiny_checkpoint, out, "--grid", "32") == 2
    assert re.search(r"job\.json records an earlier run with a different boxes", capsys.readouterr().err)


def test_glob_and_overlap(scenes: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _run(str(scenes / "b*.tif"), tiny_checkpoint, out, "--grid", "80", "--grid-overlap", "32") == 0
    _, _, cols = read_layer(out / "predictions.gpkg", "boxes")
    # 128 px with 80 px tiles every 48 px: starts 0, 48 (the last one ends at the edge)
    assert sorted(cols["box_id"]) == sorted(f"b_x{x}_y{y}" for x in (0, 48) for y in (0, 48))
    assert set(cols["feature_id"]) == {f"x{x}_y{y}" for x in (0, 48) for y in (0, 48)}


def test_stac_item_collection(scenes: Path, tiny_checkpoint: Path, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    import pystac

    items = []
    for i, name in enumerate(("a", "b")):
        item = pystac.Item(id=f"scene-{name}", geometry=None, bbox=None, properties={},
                           datetime=__import__("datetime").datetime(2024, 5, i + 1))
        item.add_asset("visual", pystac.Asset(href=str(scenes / f"{name}.tif"), media_type=pystac.MediaType.GEOTIFF))
        item.add_asset("thumb", pystac.Asset(href=str(scenes / f"{name}.tif"), media_type=pystac.MediaType.PNG))
        items.append(item)
    catalog = tmp_path / "items.json"
    catalog.write_text(json.dumps(pystac.ItemCollection(items).to_dict()))
    out = tmp_path / "out"
    assert _run(catalog, tiny_checkpoint, out, "--grid", "128", "--stac-asset", "visual") == 0
    _, _, cols = read_layer(out / "predictions.gpkg", "boxes")
    assert sorted(cols["box_id"]) == ["a_x0_y0", "b_x0_y0"]
    # a remote asset is refused, naming the catalogue and the item
    items[1].assets["visual"].href = "https://example.com/b.tif"
    catalog.write_text(json.dumps(pystac.ItemCollection(items).to_dict()))
    assert _run(catalog, tiny_checkpoint, tmp_path / "o2", "--grid", "128") == 2
    err = capsys.readouterr().err
    assert "items.json" in err and "scene-b" in err and "remote" in err


def test_boxes_jsonl_to_geopackage(scenes: Path, tiny_checkpoint: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    boxes = tmp_path / "boxes.jsonl"
    boxes.write_text(json.dumps({"image": "a.tif", "box": [10, 20, 70, 90], "id": "dock"}) + "\n"
                     + json.dumps({"image": "b.tif", "box": [500070, 4649960, 500090, 4649990],
                                   "box_crs": "EPSG:32633", "id": "pier"}) + "\n")
    out = tmp_path / "out"
    assert _run(scenes, tiny_checkpoint, out, "--boxes", str(boxes), "--format", "gpkg") == 0
    _, geoms, cols = read_layer(out / "predictions.gpkg", "boxes")
    assert sorted(cols["box_id"]) == ["dock", "pier"]
    pier = geoms[cols["box_id"].tolist().index("pier")]
    assert pier.bounds == pytest.approx((500070.0, 4649960.0, 500090.0, 4649990.0))
    # a raster of --images without boxes has nothing to do; an image that is not there is an error
    boxes.write_text(json.dumps({"image": "a.tif", "box": [10, 20, 70, 90], "id": "dock"}) + "\n")
    assert _run(scenes, tiny_checkpoint, tmp_path / "o2", "--boxes", str(boxes), "--format", "gpkg") == 0
    assert read_layer(tmp_path / "o2" / "predictions.gpkg", "boxes")[2]["box_id"].tolist() == ["dock"]
    boxes.write_text(json.dumps({"image": "gone.tif", "box": [10, 20, 70, 90]}) + "\n")
    capsys.readouterr()
    assert _run(scenes, tiny_checkpoint, tmp_path / "o3", "--boxes", str(boxes), "--format", "gpkg") == 2
    assert "boxes.jsonl line 1: image 'gone.tif' is not among --images" in capsys.readouterr().err


def test_edge_error(scenes: Path, aoi: Path, tiny_checkpoint: Path, tmp_path: Path,
                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert _run(scenes, tiny_checkpoint, out, "--vector", str(aoi), "--edge", "error") == 2
    err = capsys.readouterr().err
    assert "aoi.geojson" in err and "feature port-2" in err and "--edge error" in err
    assert not (out / "parts").exists()
    only_far = write_geojson(tmp_path / "far.geojson", {"far": AOI["far"], "port-1": AOI["port-1"]})
    assert _run(scenes, tiny_checkpoint, out, "--vector", str(only_far), "--edge", "error") == 2
    assert "feature far" in capsys.readouterr().err


def _no_crs_gpkg(path: Path) -> Path:
    import warnings

    import pyogrio.raw
    from shapely.geometry import box

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "'crs' was not provided": the point of this file
        pyogrio.raw.write(path, np.asarray([box(0, 0, 1, 1).wkb], dtype=object),
                          [np.asarray(["x"], dtype=object)],
                          ["id"], layer="sites", driver="GPKG", geometry_type="Polygon", crs=None)
    return path


@pytest.mark.parametrize(("case", "message"), [
    ("missing", r"--vector .*nope\.geojson: file not found"),
    ("no_crs", r"file .*nocrs\.gpkg: the vector layer has no CRS"),
    ("layer", r"file .*aoi\.geojson: --vector-layer roads: no such layer \(layers: aoi\)"),
    ("empty_match", r"--vector .*far\.geojson: none of its 1 feature\(s\) intersects any of the 2 raster\(s\)"),
    ("bad_id", r"file .*slash\.geojson, record a\.tif feature x/y, field 'id': id 'a_x/y' cannot name an output file"),
    ("no_images", r"--images .*nothing/\*\.tif: no image files found"),
    ("listed_missing", r"file .*list\.txt, record line 1: listed image 'gone\.tif' not found"),
    ("not_georeferenced", r"--images: .*plain\.tif is not georeferenced"),
    ("two_sources", r"give exactly one of --vector FILE, --grid SIZE or --boxes"),
])
def test_bad_inputs(case: str, message: str, scenes: Path, aoi: Path, tiny_checkpoint: Path, tmp_path: Path,
                    capsys: pytest.CaptureFixture[str]) -> None:
    images, args = str(scenes), ["--vector", str(aoi)]
    if case == "missing":
        args = ["--vector", str(tmp_path / "nope.geojson")]
    elif case == "no_crs":
        args = ["--vector", str(_no_crs_gpkg(tmp_path / "nocrs.gpkg"))]
    elif case == "layer":
        args += ["--vector-layer", "roads"]
    elif case == "empty_match":
        args = ["--vector", str(write_geojson(tmp_path / "far.geojson", {"far": AOI["far"]}))]
    elif case == "bad_id":
        args = ["--vector", str(write_geojson(tmp_path / "slash.geojson", {"x/y": AOI["port-1"]}))]
    elif case == "no_images":
        images = str(tmp_path / "nothing" / "*.tif")
    elif case == "listed_missing":
        (tmp_path / "list.txt").write_text("gone.tif\n")
        images = str(tmp_path / "list.txt")
    elif case == "not_georeferenced":
        from PIL import Image

        write_scenes(tmp_path / "mixed", n=1)
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "mixed" / "plain.tif")
        images, args = str(tmp_path / "mixed"), ["--grid", "32"]
    elif case == "two_sources":
        args += ["--grid", "64"]
    assert _run(images, tiny_checkpoint, tmp_path / "out", *args) == 2
    assert re.search(message, capsys.readouterr().err), message
    assert not (tmp_path / "out" / "parts").exists()


def test_geographic_raster_areas_are_geodesic(tmp_path: Path, tiny_checkpoint: Path) -> None:
    import rasterio
    from affine import Affine
    from pyproj import Geod

    folder = tmp_path / "ll"
    folder.mkdir()
    step = 1e-5  # degrees: about 0.83 m east-west and 1.11 m north-south at 42 N
    data = np.random.default_rng(1).integers(0, 256, size=(3, 96, 96), dtype=np.uint8)
    with rasterio.open(folder / "ll.tif", "w", driver="GTiff", width=96, height=96, count=3, dtype="uint8",
                       crs="EPSG:4326", transform=Affine(step, 0.0, 15.0, 0.0, -step, 42.0)) as dst:
        dst.write(data)
    out = tmp_path / "out"
    assert _run(folder, tiny_checkpoint, out, "--grid", "96", "--simplify", "0") == 0
    meta, _, cols = read_layer(out / "predictions.gpkg", "phrases")
    assert meta["crs"] == "EPSG:4326"
    lat = 42.0 - 48 * step
    _, _, dx = Geod(ellps="WGS84").inv(15.0, lat, 15.0 + step, lat)
    _, _, dy = Geod(ellps="WGS84").inv(15.0, lat, 15.0, lat + step)
    assert (cols["area_px"] > 0).all()
    np.testing.assert_allclose(cols["area_m2"], cols["area_px"] * dx * dy, rtol=2e-3)
