"""Caption metrics: PTB tokenisation identical to pycocoevalcap's without writing into site-packages,
CIDEr and METEOR equal to direct pycocoevalcap scorer calls, and clear behaviour without Java."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from clvnet.eval.captions import (
    JavaNotFoundError,
    caption_scores,
    cider_score,
    meteor_score,
    ptb_tokenize,
    require_java,
    simple_tokenize,
)

CAPTIONS = {
    "a": ["Two white cars are parked near the building.", "Cars, parked!"],
    "b": [""],
    "c": ['A "quoted" boat near the river-bank ... isn\'t it?'],
    "d": ["Multi\nline caption; with: punctuation -- and (brackets) {braces}"],
    "e": ["Ünïcode façade next to a café"],
}


def _tokenizer_dir() -> Path:
    from pycocoevalcap.tokenizer import ptbtokenizer

    return Path(ptbtokenizer.__file__).resolve().parent


def test_ptb_tokenize_equals_pycocoevalcap() -> None:
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    ref = PTBTokenizer().tokenize({k: [{"caption": c} for c in v] for k, v in CAPTIONS.items()})
    assert ptb_tokenize(CAPTIONS) == ref
    assert ref["a"] == ["two white cars are parked near the building", "cars parked"]


def test_ptb_tokenize_writes_nothing_into_the_package_folder() -> None:
    """The package folder stays untouched (its mtime changes on any file create/delete), so a read-only
    site-packages works; pycocoevalcap's own tokenizer does change it (root ignores write bits, so we
    check for writes instead of chmod-ing the real venv)."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    d = _tokenizer_dir()
    before = (os.stat(d).st_mtime_ns, sorted(os.listdir(d)))
    ptb_tokenize(CAPTIONS)
    assert (os.stat(d).st_mtime_ns, sorted(os.listdir(d))) == before
    PTBTokenizer().tokenize({"a": [{"caption": "x"}]})
    assert os.stat(d).st_mtime_ns != before[0]  # the check above can detect a write


def test_ptb_tokenize_works_with_a_read_only_jar_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point pycocoevalcap's tokenizer module at a copy of its folder that we watch for writes."""
    import shutil

    from pycocoevalcap.tokenizer import ptbtokenizer

    ro = tmp_path / "ro_tokenizer"
    shutil.copytree(_tokenizer_dir(), ro, ignore=shutil.ignore_patterns("__pycache__"))
    os.chmod(ro, 0o555)
    try:
        monkeypatch.setattr(ptbtokenizer, "__file__", str(ro / "ptbtokenizer.py"))
        before = os.stat(ro).st_mtime_ns
        assert ptb_tokenize({"x": ["A car."]}) == {"x": ["a car"]}
        assert os.stat(ro).st_mtime_ns == before
    finally:
        os.chmod(ro, 0o755)


def test_cider_and_meteor_equal_direct_pycocoevalcap_calls(meteor: Any) -> None:
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    refs = {"1": ["two white cars near a building"], "2": ["a boat on the river", "a small boat"],
            "3": ["several trees around a pool"], "4": ["a road next to a field"]}
    cands = {"1": "two cars near the building.", "2": "a boat", "3": "", "4": "a street beside a meadow"}
    tok = PTBTokenizer()
    gts = tok.tokenize({k: [{"caption": c} for c in v] for k, v in refs.items()})
    res = tok.tokenize({k: [{"caption": c}] for k, c in cands.items()})
    cider_direct, _ = Cider().compute_score(gts, res)
    meteor_direct, _ = meteor.compute_score(gts, res)
    out = caption_scores(refs, cands, use_java=True)
    assert out["tokenizer"] == "ptb"
    assert out["CIDEr"] == pytest.approx(float(cider_direct), abs=1e-12)
    assert out["METEOR"] == pytest.approx(float(meteor_direct), abs=1e-12)
    assert 0 < out["METEOR"] < 1 and out["CIDEr"] > 0
    assert cider_score(gts, res) == out["CIDEr"] and meteor_score(gts, res) == out["METEOR"]


def test_meteor_jvm_is_started_once(meteor: Any) -> None:
    from clvnet.eval.captions import get_meteor

    assert get_meteor() is meteor
    assert meteor.meteor_p.poll() is None


def test_simple_tokenizer() -> None:
    out = simple_tokenize(CAPTIONS)
    assert out["a"] == ["two white cars are parked near the building", "cars parked"]
    assert out["b"] == [""]
    assert out["c"] == ["a quoted boat near the river-bank isn't it"]


def test_no_java_gives_clear_error_and_no_java_mode_works(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty PATH: no java
    with pytest.raises(JavaNotFoundError, match="--no-java"):
        require_java()
    with pytest.raises(JavaNotFoundError):
        caption_scores({"a": ["a car"]}, {"a": "a car"}, use_java=True)
    out = caption_scores({"a": ["a car"], "b": ["a boat"]}, {"a": "a car", "b": "a ship"}, use_java=False)
    assert out["METEOR"] is None and out["tokenizer"] == "simple" and out["CIDEr"] > 0


def test_mismatched_keys_raise() -> None:
    with pytest.raises(ValueError, match="same images"):
        caption_scores({"a": ["x"]}, {"b": "x"}, use_java=False)


def test_other_line_breaks_do_not_misalign_captions() -> None:
    for sep in ["\r", "\u2028", "\u2029", "\x0b", "\x0c", "\r\n"]:
        out = ptb_tokenize({"a": [f"one two{sep}three"], "b": ["four five"], "c": [""]})
        assert out == {"a": ["one two three"], "b": ["four five"], "c": [""]}, repr(sep)
    assert ptb_tokenize({"a": ["x y"], "b": [""], "c": [""]}) == {"a": ["x y"], "b": [""], "c": [""]}
