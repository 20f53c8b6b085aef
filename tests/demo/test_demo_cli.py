"""``clvnet demo`` argument handling (the server itself is exercised in test_api / test_browser)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from testkit import free_port

from clvnet.cli import build_parser, main


def test_demo_defaults_bind_loopback() -> None:
    args = build_parser().parse_args(["demo", "--checkpoint", "ckpt"])
    assert (args.host, args.port, args.share, args.max_upload_mb) == ("127.0.0.1", 7860, False, 50.0)
    args = build_parser().parse_args(["demo", "--checkpoint", "c", "--share", "true", "--max-upload-mb", "5"])
    assert args.share is True and args.max_upload_mb == 5.0


def test_demo_bad_arguments_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--checkpoint", str(tmp_path / "missing")]) == 2
    assert "--checkpoint" in capsys.readouterr().err
    assert main(["demo", "--checkpoint", str(tmp_path), "--max-upload-mb", "0"]) == 2
    assert "--max-upload-mb" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo", "--checkpoint", "c", "--share", "maybe"])


def test_importing_the_demo_does_not_import_gradio() -> None:
    code = "import sys, clvnet.demo, clvnet.demo.cli; print('gradio' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


@pytest.mark.slow
def test_clvnet_demo_serves_on_loopback(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """`clvnet demo` end to end: the process serves the app on 127.0.0.1 until stopped (~20 s: slow)."""
    import time
    import urllib.request

    port = free_port()
    log = (tmp_path / "demo.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "clvnet", "demo", "--checkpoint", str(tiny_checkpoint),
                             "--port", str(port), "--max-upload-mb", "3"], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline, page = time.monotonic() + 90, ""
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=5) as resp:
                    page = resp.read().decode()
                break
            except OSError:
                time.sleep(0.5)
        assert proc.poll() is None, (tmp_path / "demo.log").read_text()
        config = json.loads(page)
        assert config["max_file_size"] == 3 * 1024 * 1024
        assert "predict_api" in page
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_demo_refuses_a_malformed_model_card_naming_the_file(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "model_card.json").write_text('{"data_name": "synthrs", "steps": "many"}')
    assert main(["demo", "--checkpoint", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "model_card.json") in err and "field 'steps'" in err
