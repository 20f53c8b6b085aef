"""Fixtures shared by the data tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from datahelpers import make_record

from clvnet.data.record import write_jsonl


@pytest.fixture
def gcg_jsonl(tmp_path: Path) -> Path:
    """A JSONL with two records (one with a box, one with box null) next to its images."""
    recs = [make_record(tmp_path, "a"), make_record(tmp_path, "b", box=None)]
    recs[1].phrases = recs[1].phrases[:1]
    path = tmp_path / "data.jsonl"
    write_jsonl(recs, path)
    return path
