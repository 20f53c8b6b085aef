"""The pieces of an archive run: tiling, rank assignment, the part files as a manifest, sources, metadata."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write_scenes

from clvnet.data.record import DataError
from clvnet.inference.archive import parts, plan, shard
from clvnet.inference.archive.rows import checkpoint_id, trained_on
from clvnet.inference.archive.sources import list_images


@pytest.mark.parametrize(("length", "size", "stride", "starts"), [
    (128, 64, 64, [0, 64]), (130, 64, 64, [0, 64, 66]), (50, 64, 64, [0]), (128, 80, 48, [0, 48]),
    (2048, 512, 512, [0, 512, 1024, 1536]),
])
def test_grid_positions(length: int, size: int, stride: int, starts: list[int]) -> None:
    got = plan.grid_positions(length, size, stride)
    assert got == starts
    assert min(length, got[-1] + size) == length  # the last tile reaches the edge


def _jobs(counts: list[int]) -> list[plan.RasterJob]:
    info = [plan.RasterInfo(path=Path(f"r{i}.tif"), width=1, height=1, crs=None, transform=None)
            for i in range(len(counts))]
    return [plan.RasterJob(raster=info[i], boxes=[plan.BoxItem(f"r{i}_{k}", str(k), (0, 0, 1, 1))
                                                  for k in range(n)]) for i, n in enumerate(counts)]


@pytest.mark.parametrize("world", [1, 2, 3, 5])
def test_assign_partitions_rasters_and_balances(world: int) -> None:
    jobs = _jobs([16, 3, 9, 9, 1, 16, 4, 7, 2, 12])
    shares = [shard.assign(jobs, shard.Ranks(rank=r, world=world)) for r in range(world)]
    names = [j.raster.path.name for s in shares for j in s]
    assert sorted(names) == sorted(j.raster.path.name for j in jobs)  # every raster once, whole
    loads = [sum(len(j.boxes) for j in s) for s in shares]
    assert max(loads) - min(loads) <= 16  # greedy: within the largest raster's box count
    if world == 2:
        assert loads == [40, 39]


def test_part_files_are_the_manifest(tmp_path: Path) -> None:
    with parts.PartWriter(tmp_path, 0) as w:
        w.append([{"key": "a|1", "box": {}, "phrases": []}, {"key": "a|2", "box": {}, "phrases": []}])
    with parts.PartWriter(tmp_path, 1) as w:
        w.append([{"key": "b|1", "box": {}, "phrases": []}])
    p0 = parts.part_path(tmp_path, 0)
    p0.write_bytes(p0.read_bytes() + b'{"key": "a|3", "bo')  # killed mid-write
    assert parts.done_keys(tmp_path) == {"a|1", "a|2", "b|1"} and parts.torn_lines(tmp_path) == 1
    with parts.PartWriter(tmp_path, 0) as w:  # the owner cuts the torn line before appending
        w.append([{"key": "a|3", "box": {}, "phrases": []}])
    assert p0.read_text().splitlines()[-1] == '{"key":"a|3","box":{},"phrases":[]}'
    assert parts.done_keys(tmp_path) == {"a|1", "a|2", "a|3", "b|1"} and parts.torn_lines(tmp_path) == 0


def test_truncate_torn_tail_longer_than_a_block(tmp_path: Path) -> None:
    p = tmp_path / "rank0.jsonl"
    p.write_bytes(b'{"key":"x"}\n' + b"y" * 200_000)
    parts._truncate_torn_tail(p)
    assert p.read_bytes() == b'{"key":"x"}\n'
    p.write_bytes(b"z" * 70_000)
    parts._truncate_torn_tail(p)
    assert p.read_bytes() == b""


def test_sources_folder_glob_list(tmp_path: Path) -> None:
    paths = write_scenes(tmp_path / "s", n=3, size=32)
    (tmp_path / "s" / "notes.txt").write_text("not an image")
    assert list_images(str(tmp_path / "s")) == paths
    assert list_images(str(tmp_path / "s" / "[ac].tif")) == [paths[0], paths[2]]
    (tmp_path / "l.txt").write_text(f"{paths[2]}\n  # comment\ns/a.tif\n")
    assert list_images(str(tmp_path / "l.txt")) == [paths[2], tmp_path / "s" / "a.tif"]
    with pytest.raises(ValueError, match="--stac-asset visual: only for a STAC catalogue"):
        list_images(str(tmp_path / "s"), "visual")
    (tmp_path / "x.json").write_text(json.dumps({"type": "Topology"}))
    with pytest.raises(DataError, match=r"x\.json: not a STAC catalogue"):
        list_images(str(tmp_path / "x.json"))


def test_stac_catalog_needs_asset_choice(tmp_path: Path) -> None:
    import datetime

    import pystac

    paths = write_scenes(tmp_path / "s", n=2, size=32)
    cat = pystac.Catalog(id="archive", description="two scenes")
    for p in paths:
        item = pystac.Item(id=p.stem, geometry=None, bbox=None, properties={},
                           datetime=datetime.datetime(2024, 1, 1))
        item.add_asset("red", pystac.Asset(href=str(p.resolve()), media_type=pystac.MediaType.GEOTIFF))
        item.add_asset("nir", pystac.Asset(href=str(p.resolve()), media_type=pystac.MediaType.GEOTIFF))
        cat.add_item(item)
    cat.normalize_and_save(str(tmp_path / "cat"), catalog_type=pystac.CatalogType.SELF_CONTAINED)
    root = tmp_path / "cat" / "catalog.json"
    with pytest.raises(DataError, match=r"catalog\.json, record a: give --stac-asset KEY: the item has 2 GeoTIFF"):
        list_images(str(root))
    assert [p.name for p in list_images(str(root), "red")] == ["a.tif", "b.tif"]
    with pytest.raises(DataError, match=r"--stac-asset blue: no such asset \(assets: nir, red\)"):
        list_images(str(root), "blue")


def test_checkpoint_id_and_trained_on(tmp_path: Path) -> None:
    ck = tmp_path / "run7"
    ck.mkdir()
    (ck / "model.safetensors").write_bytes(b"weights")
    assert checkpoint_id(ck) == "run7-" + __import__("hashlib").sha256(b"weights").hexdigest()[:12]
    assert trained_on(ck) == ""
    (ck / "train_config.yaml").write_text("data:\n  train: data/synthrs/train/records.jsonl\n  val: null\n")
    assert trained_on(ck) == "data/synthrs/train/records.jsonl"
    from clvnet.models.card import CardError, ModelCard, save_card

    save_card(ck, ModelCard(data_name="synthrs", data_version="1.1", steps=10))     # the card wins
    assert trained_on(ck) == "synthrs 1.1"
    (ck / "model_card.json").write_text("[1, 2]")
    with pytest.raises(CardError, match=r"model_card\.json"):
        trained_on(ck)
