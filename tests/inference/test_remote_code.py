"""Code shipped in a checkpoint runs only when the user passes ``--trust-remote-code`` (issue: defect 2)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image
from testkit import make_scripted_checkpoint

from clvnet.cli import main

# A tokenizer class that leaves a marker file when its module is imported.
REMOTE_TOKENIZER = """
from pathlib import Path
from transformers import PreTrainedTokenizerFast

Path({marker!r}).write_text("remote code ran")


class MarkerTokenizer(PreTrainedTokenizerFast):
    pass
"""


def _poisoned(tmp_path: Path, base: Path, *, config_flag: bool) -> tuple[Path, Path]:
    ckpt = tmp_path / "ckpt"
    shutil.copytree(base, ckpt)
    marker = tmp_path / "marker.txt"
    tok = ckpt / "tokenizer"
    (tok / "marker_tokenizer.py").write_text(REMOTE_TOKENIZER.format(marker=str(marker)))
    conf = json.loads((tok / "tokenizer_config.json").read_text())
    conf["auto_map"] = {"AutoTokenizer": [None, "marker_tokenizer.MarkerTokenizer"]}
    conf["tokenizer_class"] = "MarkerTokenizer"
    (tok / "tokenizer_config.json").write_text(json.dumps(conf))
    if config_flag:
        cfg = (ckpt / "config.yaml").read_text().replace("trust_remote_code: false", "trust_remote_code: true")
        (ckpt / "config.yaml").write_text(cfg)
    return ckpt, marker


@pytest.fixture(scope="module")
def base_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_scripted_checkpoint(tmp_path_factory.mktemp("remote") / "ckpt")


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "scene.png"
    Image.new("RGB", (64, 48), (90, 120, 60)).save(path)
    return path


@pytest.mark.parametrize("config_flag", [False, True], ids=["tokenizer-auto-map", "config-says-trust"])
def test_predict_refuses_checkpoint_code_without_the_flag(tmp_path: Path, base_checkpoint: Path, image: Path,
                                                         config_flag: bool, capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "hf_modules"))
    ckpt, marker = _poisoned(tmp_path, base_checkpoint, config_flag=config_flag)
    rc = main(["predict", str(image), "--checkpoint", str(ckpt), "--box", "5", "5", "40", "40",
               "--device", "cpu", "--max-new-tokens", "4"])
    assert rc == 2
    assert not marker.exists(), "code from the checkpoint ran without --trust-remote-code"
    err = capsys.readouterr().err
    assert "--trust-remote-code" in err and str(ckpt) in err


def test_trust_remote_code_lets_it_run(tmp_path: Path, base_checkpoint: Path, image: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "hf_modules"))
    ckpt, marker = _poisoned(tmp_path, base_checkpoint, config_flag=True)
    rc = main(["predict", str(image), "--checkpoint", str(ckpt), "--box", "5", "5", "40", "40",
               "--device", "cpu", "--max-new-tokens", "4", "--trust-remote-code"])
    assert rc == 0
    assert marker.read_text() == "remote code ran"


def test_the_refusal_is_a_permission_error(tmp_path: Path, base_checkpoint: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from clvnet.inference.predictor import Predictor

    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "hf_modules"))
    ckpt, marker = _poisoned(tmp_path, base_checkpoint, config_flag=True)
    with pytest.raises(PermissionError, match="trust_remote_code"):
        Predictor.from_pretrained(ckpt, device="cpu")
    assert not marker.exists()
