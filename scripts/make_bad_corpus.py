"""Write the bad-input corpus (tests/data/bad/): one file per bad-input case, all of them small.

``tests/test_bad_inputs.py`` runs every case through each CLI entry point that reads that kind of input
and checks that the run fails within 10 s with a message naming the file and the field; it also re-runs
this script and checks that it reproduces the committed corpus. Regenerate after changing a case::

    python scripts/make_bad_corpus.py --out tests/data/bad

Records (``*.jsonl`` under ``records/``) hold two lines: a valid record ``a`` and the bad record ``b``, so
every reader has to get past line 1 before it meets the defect.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path
from typing import Any

import numpy as np

from clvnet.data.record import MAX_CAPTION_CHARS, MAX_PHRASES
from clvnet.data.rle import counts_to_string

H, W = 24, 32


def rect_rle(y0: int, y1: int, x0: int, x1: int) -> dict[str, Any]:
    """The RLE of a rectangle in the H x W scene (column-major runs, as COCO counts them)."""
    m = np.zeros((H, W), np.uint8)
    m[y0:y1, x0:x1] = 1
    flat = m.reshape(-1, order="F")
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]])
    runs = np.diff(bounds).tolist()
    return {"size": [H, W], "counts": counts_to_string([0, *runs] if flat[0] else runs)}


def record(rid: str) -> dict[str, Any]:
    """A valid record on ``scene.png`` with two phrases, one mask each (so it is a valid prediction too)."""
    caption = "A small lot. The red car is parked near a green roof."
    return {"id": rid, "image": "scene.png", "height": H, "width": W, "box": [2.0, 2.0, 30.0, 22.0],
            "caption": caption,
            "phrases": [{"text": "The red car", "span": [13, 24], "masks": [rect_rle(10, 14, 4, 12)]},
                        {"text": "a green roof", "span": [40, 52], "masks": [rect_rle(2, 8, 20, 30)]}],
            "meta": {}}


def _jsonl(*lines: dict[str, Any] | bytes) -> bytes:
    return b"".join(x if isinstance(x, bytes) else json.dumps(x).encode() + b"\n" for x in lines)


def record_cases() -> dict[str, bytes]:
    """``records/<case>.jsonl``: line 1 a valid record, line 2 the defect."""
    good, bad = record("a"), record("b")
    cases: dict[str, bytes] = {}

    def with_mask(counts: Any, size: list[int] | None = None) -> dict[str, Any]:
        r = copy.deepcopy(bad)
        r["phrases"][0]["masks"][0] = {"size": size or [H, W], "counts": counts}
        return r

    cases["rle_counts_short"] = _jsonl(good, with_mask(counts_to_string([0, H * W - 100])))
    cases["rle_counts_long"] = _jsonl(good, with_mask(counts_to_string([0, H * W, 500])))
    cases["rle_garbage"] = _jsonl(good, with_mask("garbage!!"))
    cases["rle_size_mismatch"] = _jsonl(good, with_mask(counts_to_string([H * W * 4]), [2 * H, 2 * W]))
    cases["invalid_utf8"] = _jsonl(good, json.dumps(bad).encode().replace(b"red car", b"red \xff\xfe car", 1) + b"\n")
    cases["not_json"] = _jsonl(good, json.dumps(bad).encode()[:90] + b"\n")
    missing = copy.deepcopy(bad)
    del missing["height"]
    cases["not_a_record"] = _jsonl(good, missing)
    span = copy.deepcopy(bad)
    span["phrases"][1]["span"] = [41, 53]
    cases["span_mismatch"] = _jsonl(good, span)
    long_caption = copy.deepcopy(bad)
    long_caption["caption"] += " Fields." * ((MAX_CAPTION_CHARS - len(bad["caption"])) // 8 + 1)
    cases["caption_too_long"] = _jsonl(good, long_caption)
    many = copy.deepcopy(bad)
    words = [f"w{k}" for k in range(MAX_PHRASES + 1)]
    many["caption"] = " ".join(words)
    pos, many["phrases"] = 0, []
    for w in words:
        many["phrases"].append({"text": w, "span": [pos, pos + len(w)], "masks": [rect_rle(0, 2, 0, 2)]})
        pos += len(w) + 1
    cases["too_many_phrases"] = _jsonl(good, many)
    return cases


def boxes_cases() -> dict[str, bytes]:
    """``boxes/<case>.jsonl`` for ``clvnet predict --boxes``: line 1 fine, line 2 the defect."""
    ok = {"image": "scene.png", "box": [2, 2, 20, 20], "id": "fine"}
    return {
        "id_parent_path": _jsonl(ok, {**ok, "id": "../../escaped"}),
        "id_absolute_path": _jsonl(ok, {**ok, "id": "/tmp/clvnet-escaped"}),
        "id_nul_byte": _jsonl(ok, {**ok, "id": "bad\u0000id"}),
        "id_duplicate": _jsonl(ok, {**ok, "box": [4, 4, 24, 20]}),
        "id_not_a_string": _jsonl(ok, {**ok, "id": {"name": "x"}}),
        "invalid_utf8": _jsonl(ok, json.dumps({**ok, "id": "caf-"}).encode().replace(b"caf-", b"caf\xe9") + b"\n"),
    }


def config_cases() -> dict[str, bytes]:
    """``config/<case>``: an experiment YAML with a syntax error, one override line, a config that is a string."""
    return {
        "yaml_syntax.yaml": b"train: {max_steps: 5\noptim: [\n",
        "override_yaml_syntax.txt": b"train.max_steps=[1,\n",
        "config_plain_string.yaml": b"just a plain string\n",
    }


def truncated_safetensors() -> bytes:
    """A safetensors file cut in half: a valid header that promises more bytes than follow."""
    header = json.dumps({"w": {"dtype": "F32", "shape": [256], "data_offsets": [0, 1024]}},
                        separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    data = len(header).to_bytes(8, "little") + header + np.arange(256, dtype="<f4").tobytes()
    return data[: len(data) // 2]


def truncated_tiff(path: Path) -> bytes:
    """A 60,000 x 60,000 striped GeoTIFF header whose pixel data is missing (the file is 4 KB)."""
    import warnings

    import rasterio
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.windows import Window

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", driver="GTiff", width=60000, height=60000, count=3, dtype="uint8",
                           sparse_ok=True) as ds:
            ds.write(np.zeros((3, 16, 16), np.uint8), window=Window(0, 0, 16, 16))
    data = path.read_bytes()[:4096]
    path.unlink()
    return data


def write_corpus(out: Path) -> list[Path]:
    """Write every case under ``out``; returns the files written."""
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, bytes] = {}
    files.update({f"records/{k}.jsonl": v for k, v in record_cases().items()})
    files["records/good.jsonl"] = _jsonl(record("a"), record("b"))
    files.update({f"boxes/{k}.jsonl": v for k, v in boxes_cases().items()})
    files.update({f"config/{k}": v for k, v in config_cases().items()})
    files["checkpoint/model_truncated.safetensors"] = truncated_safetensors()
    files["images/header_60000_truncated.tif"] = truncated_tiff(out / ".tmp.tif")
    files["images/not_an_image.png"] = b"this is a text file, not a PNG\n"
    written = []
    for rel, data in files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.append(path)
    scene = np.zeros((H, W, 3), np.uint8)
    scene[10:14, 4:12] = (200, 30, 30)
    scene[2:8, 20:30] = (30, 160, 60)
    for folder in ("records", "boxes"):
        Image.fromarray(scene).save(out / folder / "scene.png")
        written.append(out / folder / "scene.png")
    return written


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="corpus folder (tests/data/bad)")
    args = p.parse_args(argv)
    files = write_corpus(args.out)
    print(f"wrote {len(files)} files under {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
