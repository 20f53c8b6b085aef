"""``clvnet eval`` end to end through the real CLI, incl. the GLaMM export round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clvnet.cli import main
from clvnet.data.record import write_jsonl
from clvnet.eval.synthetic import make_pair

METRIC_KEYS = ("CIDEr", "METEOR", "AP50", "mIoU", "Recall", "uni_target", "multi_target", "counts")


@pytest.fixture(scope="module")
def jsonl_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("evalcli")
    gt, pred = make_pair(12, phrases_per_image=4, size=48, seed=7, missing_frac=0.2)
    write_jsonl(gt, d / "gt.jsonl")
    write_jsonl(pred, d / "pred.jsonl")
    return d / "gt.jsonl", d / "pred.jsonl"


def test_export_glamm_round_trip_gives_identical_numbers(jsonl_pair: tuple[Path, Path], tmp_path: Path,
                                                         tiny_encoder_dir: Path, meteor: object,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    gt, pred = jsonl_pair
    enc = ["--text-encoder", str(tiny_encoder_dir)]
    assert main(["eval", "--gt", str(gt), "--pred", str(pred), "--out", str(tmp_path / "a.json"), *enc]) == 0
    out = capsys.readouterr().out
    assert "| overall |" in out and "multi-target" in out and str(tiny_encoder_dir) in out
    assert main(["eval", "export-glamm", "--gt", str(gt), "--pred", str(pred), "--out", str(tmp_path / "g")]) == 0
    g = tmp_path / "g"
    files = sorted(p.name for p in (g / "predictions").iterdir())
    assert len(files) == sum(1 for _ in pred.open()) and files[0].endswith(".json")
    pf = json.loads((g / "predictions" / files[0]).read_text())
    assert set(pf) == {"image_id", "caption", "phrases", "pred_masks"}
    assert main(["eval", "--gt", str(g / "gcg_coco_mask_gt.json"), "--gt-captions", str(g / "gcg_coco_caption_gt.json"),
                 "--pred", str(g / "predictions"), "--out", str(tmp_path / "b.json"), *enc]) == 0
    a, b = (json.loads((tmp_path / n).read_text()) for n in ("a.json", "b.json"))
    for k in METRIC_KEYS:
        assert a[k] == b[k], k
    assert a["counts"]["missing_predictions"] > 0 and a["METEOR"] is not None
    assert a["multi_target"]["AP50"] is not None


def test_glamm_nested_prediction_and_mixed_formats(jsonl_pair: tuple[Path, Path], tmp_path: Path,
                                                   tiny_encoder_dir: Path) -> None:
    gt, pred = jsonl_pair
    g = tmp_path / "g"
    assert main(["eval", "export-glamm", "--gt", str(gt), "--pred", str(pred), "--out", str(g)]) == 0
    f = next((g / "predictions").iterdir())
    f.write_text(json.dumps({f.stem: json.loads(f.read_text())}))  # {image_id: {...}} as GLaMM also reads
    enc = ["--text-encoder", str(tiny_encoder_dir), "--no-java"]
    assert main(["eval", "--gt", str(gt), "--pred", str(pred), "--out", str(tmp_path / "a.json"), *enc]) == 0
    assert main(["eval", "--gt", str(gt), "--pred", str(g / "predictions"), "--out", str(tmp_path / "b.json"),
                 *enc]) == 0
    a, b = (json.loads((tmp_path / n).read_text()) for n in ("a.json", "b.json"))
    for k in METRIC_KEYS:
        assert a[k] == b[k], k


def test_bad_arguments_are_clear_errors(jsonl_pair: tuple[Path, Path], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    gt, pred = jsonl_pair
    assert main(["eval", "--gt", str(gt)]) == 2
    assert "needs --gt and --pred" in capsys.readouterr().err
    (tmp_path / "m.json").write_text("{}")
    assert main(["eval", "--gt", str(tmp_path / "m.json"), "--pred", str(pred)]) == 2
    assert "--gt-captions" in capsys.readouterr().err
    assert main(["eval", "--gt", str(tmp_path / "nope.jsonl"), "--pred", str(pred)]) == 2
    assert "file not found" in capsys.readouterr().err


def test_java_missing_in_cli_is_a_clear_message(jsonl_pair: tuple[Path, Path], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    gt, pred = jsonl_pair
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["eval", "--gt", str(gt), "--pred", str(pred)]) == 2
    err = capsys.readouterr().err
    assert "Java was not found" in err and "--no-java" in err
