"""Record limits (``MAX_CAPTION_CHARS``, ``MAX_PHRASES``): a record past them is a clear error everywhere,
before any work that grows with it (``data show`` drew a 480 x 311,330 PNG for a 1 MB caption)."""

from __future__ import annotations

from pathlib import Path

import pytest
from datahelpers import make_record

from clvnet.cli import main
from clvnet.data.record import (
    MAX_CAPTION_CHARS,
    MAX_PHRASES,
    DataError,
    GCGRecord,
    Phrase,
    validate,
    write_jsonl,
)


def _long_caption(tmp_path: Path) -> GCGRecord:
    rec = make_record(tmp_path, "a")
    rec.caption = rec.caption + " " + "word " * (MAX_CAPTION_CHARS // 5)
    return rec


def _many_phrases(tmp_path: Path, n: int = MAX_PHRASES + 1) -> GCGRecord:
    rec = make_record(tmp_path, "a")
    mask = rec.phrases[0].masks[0]
    words = [f"w{k}" for k in range(n)]
    rec.caption = " ".join(words)
    pos, rec.phrases = 0, []
    for w in words:
        rec.phrases.append(Phrase(text=w, span=(pos, pos + len(w)), masks=[mask]))
        pos += len(w) + 1
    return rec


def test_validate_names_the_limit() -> None:
    rec = GCGRecord(image="x.png", height=4, width=4, caption="x" * (MAX_CAPTION_CHARS + 1), id="r")
    with pytest.raises(DataError, match=rf"record r, field 'caption': caption has {MAX_CAPTION_CHARS + 1} characters"):
        validate(rec)


def test_records_at_the_limits_are_fine(tmp_path: Path) -> None:
    validate(_many_phrases(tmp_path, MAX_PHRASES))
    rec = make_record(tmp_path, "a")
    rec.caption += " " * (MAX_CAPTION_CHARS - len(rec.caption))
    validate(rec)


@pytest.mark.parametrize(("make", "message"), [
    (_long_caption, f"field 'caption': caption has {MAX_CAPTION_CHARS + 95} characters; a record holds at "
                    f"most {MAX_CAPTION_CHARS}"),
    (_many_phrases, f"field 'phrases': {MAX_PHRASES + 1} phrases; a record holds at most {MAX_PHRASES}"),
])
@pytest.mark.parametrize("command", ["show", "check"])
def test_data_show_and_check_refuse_records_past_the_limits(tmp_path: Path, make: object, message: str,
                                                            command: str, capsys: pytest.CaptureFixture[str]) -> None:
    rec = make(tmp_path)  # type: ignore[operator]
    write_jsonl([rec], tmp_path / "d.jsonl")
    args = ["data", command, str(tmp_path / "d.jsonl")] + (["--out", str(tmp_path / "s.png")] if command == "show" else [])
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "d.jsonl" in err and "record a" in err and message in err, err
    assert not (tmp_path / "s.png").exists()


def test_eval_refuses_too_many_phrases(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_jsonl([_many_phrases(tmp_path)], tmp_path / "many.jsonl")
    write_jsonl([make_record(tmp_path, "a")], tmp_path / "one.jsonl")
    for gt, pred, where in (("many", "one", "many.jsonl, record a, field 'phrases'"),   # GT: validated records
                            ("one", "many", "many.jsonl, record a, field 'phrases'")):  # predictions
        rc = main(["eval", "--gt", str(tmp_path / f"{gt}.jsonl"), "--pred", str(tmp_path / f"{pred}.jsonl"),
                   "--no-java"])
        assert rc == 2
        err = capsys.readouterr().err
        assert where in err and f"{MAX_PHRASES + 1} phrases" in err and f"at most {MAX_PHRASES}" in err, err
