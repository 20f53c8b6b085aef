"""GCG records: tagged-text round trips, validation errors and JSONL IO."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from clvnet.data import rle
from clvnet.data.record import (
    DataError,
    GCGRecord,
    Phrase,
    from_tagged,
    read_jsonl,
    strip_tags,
    to_tagged,
    validate,
    write_jsonl,
)

H, W = 20, 30
GEOPIXELD = Path("/work/shared/reference/geopixeld/P0224_0_800_0_800.json")


def _mask(h: int = H, w: int = W) -> dict:
    m = np.zeros((h, w), np.uint8)
    m[2:5, 3:9] = 1
    return rle.encode(m)


def _record(**kw: object) -> GCGRecord:
    caption, phrases = from_tagged("Fields. <p> Two cars </p> [SEG] park by <p> a house </p> [SEG].")
    for p in phrases:
        p.masks = [_mask()]
    rec = GCGRecord(image="img.png", height=H, width=W, caption=caption, phrases=phrases, box=(1, 2, 10, 12),
                    id="r1")
    for k, v in kw.items():
        setattr(rec, k, v)
    return rec


CANONICAL = [
    "Fields. <p> Two cars </p> [SEG] park by <p> a house </p> [SEG].",
    "<p> A pool </p> [SEG]",  # phrase at both ends
    "<p> a </p> [SEG]<p> b </p> [SEG] , <p> c-1 </p> [SEG]",  # adjacent phrases
    "Été: <p> naïve café </p> [SEG] — au nord-ouest.",  # non-ASCII
    "No phrase at all.",
    "",
]


@pytest.mark.parametrize("tagged", CANONICAL)
def test_canonical_tagged_round_trip(tagged: str) -> None:
    caption, phrases = from_tagged(tagged)
    for p in phrases:
        assert caption[p.span[0]:p.span[1]] == p.text
    assert "<p>" not in caption and "[SEG]" not in caption
    assert to_tagged(caption, phrases) == tagged


@pytest.mark.skipif(not GEOPIXELD.is_file(), reason="reference sample not available")
def test_real_geopixeld_description_round_trips() -> None:
    tagged = json.loads(GEOPIXELD.read_text())["gcg_description"]
    assert to_tagged(*from_tagged(tagged)) == tagged


def test_record_to_tagged_to_record_random() -> None:
    rng = random.Random(0)
    words = ["the", "car", "north-west", "pool,", "roof.", "2", "x"]
    for _ in range(200):
        parts, phrases, pos = [], [], 0
        for _ in range(rng.randint(0, 6)):
            gap = " ".join(rng.choice(words) for _ in range(rng.randint(0, 3)))
            gap = (gap + " ") if gap else ""
            text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 3)))
            parts.append(gap)
            pos += len(gap)
            phrases.append(Phrase(text=text, span=(pos, pos + len(text))))
            parts.append(text)
            pos += len(text)
            sep = rng.choice(["", " ", ", "])
            parts.append(sep)
            pos += len(sep)
        caption = "".join(parts)
        back_caption, back = from_tagged(to_tagged(caption, phrases))
        assert back_caption == caption and back == phrases


def test_non_canonical_spacing_gives_the_same_caption() -> None:
    a = from_tagged("A <p>car</p>[SEG] here")
    b = from_tagged("A <p>  car \n</p>   [SEG] here")
    assert a == b == ("A car here", [Phrase("car", (2, 5))])
    assert strip_tags("A <p> car </p> [SEG]  here ") == "A car here"


def test_to_tagged_rejects_overlap() -> None:
    with pytest.raises(ValueError, match="overlap"):
        to_tagged("a big car", [Phrase("a big", (0, 5)), Phrase("big car", (2, 9))])


# --------------------------------------------------------------------------- validation
def _fails(rec: GCGRecord, field: str, message: str) -> None:
    with pytest.raises(DataError, match=message) as e:
        validate(rec, file="train.jsonl")
    text = str(e.value)
    assert "file train.jsonl" in text and "record r1" in text and f"field '{field}'" in text
    assert e.value.field == field and e.value.record == "r1"


def test_valid_record_passes() -> None:
    validate(_record(), file="train.jsonl")
    validate(_record(box=None))


def test_span_mismatch() -> None:
    rec = _record()
    rec.phrases[1].span = (rec.phrases[1].span[0] + 1, rec.phrases[1].span[1] + 1)
    _fails(rec, "phrases[1].span", "expected 'a house'")
    rec = _record()
    rec.phrases[0].span = (5, 500)
    _fails(rec, "phrases[0].span", "out of range")


def test_overlapping_phrases() -> None:
    rec = _record()
    rec.phrases.append(Phrase("house", (rec.phrases[1].span[0] + 2, rec.phrases[1].span[1]), [_mask()]))
    _fails(rec, "phrases[2].span", "overlaps")


@pytest.mark.parametrize(("box", "message"), [
    ((10, 2, 1, 12), "zero area or inverted"), ((1, 12, 10, 2), "zero area or inverted"),
    ((4, 2, 4, 12), "zero area or inverted"), ((1, 2, 31, 12), "outside"), ((-1, 2, 10, 12), "outside"),
])
def test_bad_box(box: tuple, message: str) -> None:
    _fails(_record(box=box), "box", message)


def test_mask_errors() -> None:
    rec = _record()
    rec.phrases[0].masks = [_mask(H, W + 1)]
    _fails(rec, "phrases[0].masks[0]", f"RLE size {H}x{W + 1} differs from the image size {H}x{W}")
    rec = _record()
    rec.phrases[1].masks = []
    _fails(rec, "phrases[1].masks", "has no mask")
    rec = _record()
    rec.phrases[0].masks = [{"counts": "abc"}]
    _fails(rec, "phrases[0].masks[0]", "not a COCO RLE")
    rec = _record(height=0)
    _fails(rec, "height/width", "must be positive")


# --------------------------------------------------------------------------- JSONL
def test_jsonl_round_trip(tmp_path: Path) -> None:
    recs = [_record(), _record(id="r2", box=None, meta={"split": "val"})]
    assert write_jsonl(recs, tmp_path / "d" / "x.jsonl") == 2
    assert not list((tmp_path / "d").glob("*.tmp"))
    back = read_jsonl(tmp_path / "d" / "x.jsonl", validate_records=True)
    assert [r.to_dict() for r in back] == [r.to_dict() for r in recs]
    assert GCGRecord(image="a/b/P1.png", height=1, width=1, caption="").id == "P1"  # id defaults to the stem


def test_truncated_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    write_jsonl([_record(), _record(id="r2")], path)
    lines = path.read_text().splitlines()
    path.write_text(lines[0] + "\n\n" + lines[1][:40] + "\n")
    with pytest.raises(DataError, match=r"line 3 is not valid JSON \(truncated\?\)") as e:
        read_jsonl(path)
    assert f"file {path}" in str(e.value)


def test_bad_lines_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "k.jsonl"
    path.write_text(json.dumps({"id": "z", "image": "a.png", "height": 3}) + "\n")
    with pytest.raises(DataError, match="line 1 is not a GCG record") as e:
        read_jsonl(path)
    assert "record z" in str(e.value)
    bad = _record()
    bad.phrases[0].masks = [_mask(H + 1, W)]
    write_jsonl([bad], path)
    assert len(read_jsonl(path)) == 1  # not validated by default
    with pytest.raises(DataError, match=f"file {path}, record r1, field 'phrases.0..masks.0.'"):
        read_jsonl(path, validate_records=True)
    with pytest.raises(DataError, match="file not found"):
        read_jsonl(tmp_path / "nope.jsonl")


def test_invalid_utf8_names_file_and_line_in_every_reader(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 used to surface as a bare ``'utf-8' codec can't decode`` error."""
    import json as _json

    from clvnet.data.loaders.common import read_json
    from clvnet.data.loaders.grandf import load_grandf

    path = tmp_path / "u.jsonl"
    write_jsonl([_record(), _record(id="r2")], path)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + lines[1].replace(b'"r2"', b'"r\xff2"'))
    with pytest.raises(DataError, match=r"record line 2: line 2 is not valid UTF-8 \(byte b'\\xff' at column \d+\)") as e:
        read_jsonl(path)
    assert f"file {path}" in str(e.value)
    gf = tmp_path / "g.jsonl"
    gf.write_bytes(b'{"file_name": "a.png"}\n{"caption": "\xe9t\xe9"}\n')
    with pytest.raises(DataError, match=r"g\.jsonl, record line 2: line 2 is not valid UTF-8"):
        load_grandf(gf)
    js = tmp_path / "a.json"
    js.write_bytes(_json.dumps({"caption": "ok"}).encode()[:-2] + b'\xc3"}')
    with pytest.raises(DataError, match=r"a\.json: not valid UTF-8 \(byte b'\\xc3' at offset \d+\)"):
        read_json(js)


def test_dataset_reader_names_the_line_of_invalid_utf8(tmp_path: Path) -> None:
    from clvnet.data.dataset import DatasetConfig, GCGDataset

    path = tmp_path / "u.jsonl"
    write_jsonl([_record(), _record(id="r2")], path)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + lines[1].replace(b'"r2"', b'"r\xff2"'))
    ds = GCGDataset(path, DatasetConfig(), train=False)
    with pytest.raises(DataError, match=r"record line 2: line 2 is not valid UTF-8"):
        ds.record(1)
