"""The import contracts in pyproject.toml (``lint-imports``, run by ``make lint``) hold, and they catch violations."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).parent / "lint-imports"


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT), "--no-cache", str(root / "pyproject.toml")], cwd=root, text=True,
                          capture_output=True, timeout=120, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    if not LINT.is_file():
        pytest.fail(f"lint-imports not installed next to {sys.executable} (the dev extra installs import-linter)")
    shutil.copytree(REPO / "clvnet", tmp_path / "clvnet", ignore=shutil.ignore_patterns("__pycache__", "assets"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_contracts_hold(copy: Path) -> None:
    res = _lint(copy)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "4 kept, 0 broken" in res.stdout


@pytest.mark.parametrize("module, line, broken", [
    ("models/vision.py", "from clvnet.inference import predictor", "areas are layered"),
    ("data/record.py", "import clvnet.models.modeling", "areas are layered"),
    ("eval/matching.py", "from clvnet.losses import mask", "losses are imported only by models"),
    ("models/cgformer.py", "from clvnet.models import generation", "one-way chain"),
])
def test_a_violation_breaks_a_contract(copy: Path, module: str, line: str, broken: str) -> None:
    path = copy / "clvnet" / module
    path.write_text(path.read_text() + f"\n\ndef _violation() -> None:\n    {line}  # noqa\n")
    res = _lint(copy)
    assert res.returncode != 0
    assert f"{broken}" in res.stdout and "BROKEN" in res.stdout, res.stdout
