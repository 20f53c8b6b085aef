"""RLE validation (``clvnet.data.rle.check_rle``): every malformed RLE is a clear error, found without
pycocotools (whose ``merge`` / ``iou`` loop forever when the runs do not cover the mask)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from datahelpers import make_record
from testkit import rle_string

from clvnet.cli import main
from clvnet.data import rle
from clvnet.data.record import DataError, validate, write_jsonl


def test_valid_rles_pass_in_every_form() -> None:
    m = np.zeros((6, 5), np.uint8)
    m[1:4, 2:5] = 1
    r = rle.encode(m)
    assert rle.check_rle(r) == (6, 5)
    assert rle.check_rle({"size": r["size"], "counts": r["counts"].encode()}) == (6, 5)
    runs = [int(v) for v in rle.counts_from_string(r["counts"])]
    assert sum(runs) == 30 and rle.check_rle({"size": [6, 5], "counts": runs}) == (6, 5)
    assert rle.check_rle({"size": [2, 2], "counts": [0, 4]}) == (2, 2)  # only the first run may be empty


@pytest.mark.parametrize(("bad", "message"), [
    ({"size": [4, 4], "counts": rle_string([0, 10])}, "runs cover 10 pixels but the size 4x4 has 16"),
    ({"size": [4, 4], "counts": rle_string([3, 10, 8])}, "runs cover 21 pixels"),
    ({"size": [4, 4], "counts": [0, 10]}, "runs cover 10 pixels"),
    ({"size": [4, 4], "counts": rle_string([20, -4])}, "run 1 has negative length -4"),
    ({"size": [2, 2], "counts": [0, 0, 1, 1, 0, 2]}, r"run 1 has length 0 \(only the first run"),
    ({"size": [2, 2], "counts": rle_string([1, 3, 0])}, "run 2 has length 0"),
    ({"size": [0, 7], "counts": ""}, "holds no pixel"),
    ({"size": [4, 4], "counts": "garbage!!"}, r"'r' at position 2, outside the RLE alphabet"),
    ({"size": [4, 4], "counts": "0`"}, "ends inside a run length"),
    ({"size": [4, 4], "counts": "oooooooooo0"}, "run length of 11 characters"),
    ({"size": [4, 4], "counts": [1.5, 14.5]}, "list of integers"),
    ({"size": [4, 4], "counts": 16}, "must be a string or a list"),
    ({"size": [4, -4], "counts": ""}, "two non-negative integers"),
    ({"size": [4.5, 4], "counts": ""}, "two non-negative integers"),
    ({"size": "4x4", "counts": ""}, r"must be \[height, width\]"),
    ({"size": [70000, 70000], "counts": ""}, "exceeds 4294967295 pixels"),
    ({"counts": "0"}, "needs 'size' and 'counts'"),
    ([1, 2], "not a COCO RLE"),
])
def test_malformed_rles_raise_saying_what_is_wrong(bad: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rle.check_rle(bad)


def test_decode_and_area_refuse_short_runs_that_pycocotools_accepts() -> None:
    from pycocotools import mask as mask_utils

    short = {"size": [4, 4], "counts": rle_string([0, 10])}
    assert int(mask_utils.area({"size": [4, 4], "counts": short["counts"].encode()})) == 10  # pycocotools: fine
    with pytest.raises(ValueError, match="runs cover 10 pixels"):
        rle.decode(short)
    with pytest.raises(ValueError, match="runs cover 10 pixels"):
        rle.area(short)


def test_validate_and_data_check_catch_runs_that_do_not_cover_the_mask(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    rec = make_record(tmp_path, "a")
    rec.phrases[1].masks[1] = {"size": [rec.height, rec.width], "counts": rle_string([0, rec.height * rec.width - 7])}
    with pytest.raises(DataError, match=r"record a, field 'phrases\[1\]\.masks\[1\]': not a valid COCO RLE"):
        validate(rec)
    write_jsonl([rec], tmp_path / "d.jsonl")
    assert main(["data", "check", str(tmp_path / "d.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "d.jsonl" in err and "record a" in err and "phrases[1].masks[1]" in err and "runs cover 4793" in err
