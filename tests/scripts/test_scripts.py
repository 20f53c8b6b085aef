"""Every script under scripts/ runs with small arguments (an untested script rots)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts"
# run by .ci/run itself (they install system packages or build a wheel into a fresh venv)
RUN_BY_CI = {"ci_browser_setup.sh": "ci_browser_setup.sh", "ci_wheel_check.sh": "make check-wheel"}


def _run(*args: str, timeout: int = 300) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    res = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{args[0]} exited {res.returncode}\n{res.stdout[-2000:]}\n{res.stderr[-4000:]}"
    return res.stdout


def test_every_script_is_covered() -> None:
    tested = {name.split("::")[-1] for name in TESTED}
    tested |= {p.name.removeprefix("test_").replace(".py", "") + ".py" for p in Path(__file__).parent.glob("test_*.py")}
    ci = (REPO / ".ci" / "run").read_text()
    for path in SCRIPTS.iterdir():
        if path.suffix in (".py", ".sh"):
            assert path.name in tested or (path.name in RUN_BY_CI and RUN_BY_CI[path.name] in ci), \
                f"scripts/{path.name} is run neither by tests/scripts nor by .ci/run"


def test_bench_eval() -> None:
    out = _run("scripts/bench_eval.py", "--images", "4", "--phrases", "2", "--size", "64", "--no-java")
    assert "AP50" in out or "mIoU" in out


def test_bench_inference_and_make_big_geotiff(tmp_path: Path) -> None:
    big = tmp_path / "big.tif"
    _run("scripts/make_big_geotiff.py", str(big), "--size", "600", "--block", "256", "--overviews")
    assert big.stat().st_size > 0
    out = tmp_path / "bench.json"
    _run("scripts/bench_inference.py", "--sizes", "tiny", "--new-tokens", "6", "--predict-tokens", "3",
         "--threads", "1", "--big", str(big), "--out", str(out))
    res = json.loads(out.read_text())["tiny"]
    assert res["kv_cache"]["cache_tokens"] == 6 and res["kv_cache"]["same_tokens"] == 6
    assert {"feature_cache", "batch", "big_geotiff"} <= set(res)


def test_bench_model_step() -> None:
    out = _run("scripts/bench_model_step.py", "--preset", "tiny", "--batch", "2", "--steps", "1", "--threads", "1",
               "--image-size", "64", "--region-size", "32", "--mask-size", "128")
    assert "forward" in out and "backward" in out


def test_bench_train() -> None:
    out = _run("scripts/bench_train.py", "--steps", "2", "--warmup", "1", "--threads", "1", "--num-train", "12",
               "train.batch_size=4", "data.dataset.cache_mb=0")
    res = json.loads(out[out.index("{"):])
    assert res["steps"] == 2 and res["samples_per_s"] > 0


def test_diagnose_quickstart(tmp_path: Path) -> None:
    from clvnet.cli import main
    from clvnet.data.synth import generate_split

    run = tmp_path / "run"
    train = generate_split(run / "data" / "train", 8, 0, split="train")
    generate_split(run / "data" / "test", 4, 0, split="test")
    assert main(["train", "--config", "quickstart", f"data.train={train}", "data.val=null", "data.dataset.cache_mb=0",
                 "train.max_steps=2", "train.batch_size=4", "train.time_budget_min=null", "train.progress=false",
                 "train.cpu_threads=1", "model.generation.max_new_tokens=8", f"output_dir={run}"]) == 0
    out = _run("scripts/diagnose_quickstart.py", str(run), "--samples", "4", "--words", "3")
    assert "teacher" in out.lower()


def test_make_tiled_folder_and_bench_archive(tmp_path: Path) -> None:
    import pyogrio

    _run("scripts/make_tiled_folder.py", str(tmp_path / "work" / "scenes"), "--count", "2", "--size", "128",
         "--aoi", "4")
    assert sorted(p.name for p in (tmp_path / "work" / "scenes").iterdir()) == [
        "aoi.geojson", "scene_000.tif", "scene_001.tif"]
    assert pyogrio.read_info(tmp_path / "work" / "scenes" / "aoi.geojson")["features"] == 4
    out = tmp_path / "bench.json"
    _run("scripts/bench_archive.py", "--work", str(tmp_path / "work"), "--parts", "rss", "--size", "128",
         "--rss-boxes", "3", "--rss-box-size", "32", "--new-tokens", "2", "--threads", "1", "--out", str(out))
    res = json.loads(out.read_text())
    assert res["rss_3_boxes"]["boxes"] == 3 and res["rss_3_boxes"]["peak_rss_gib"] > 0


@pytest.mark.slow
def test_bench_archive_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    _run("scripts/bench_archive.py", "--work", str(tmp_path / "work"), "--scenes", "2", "--size", "128",
         "--grid", "64", "--rss-boxes", "2,4", "--rss-box-size", "32", "--new-tokens", "2", "--out", str(out))
    res = json.loads(out.read_text())
    assert res["one_process"][0]["boxes"] == res["two_processes"][0]["boxes"] == 8
    assert res["cache_on"][0]["boxes"] == res["cache_off"][0]["boxes"] == 8
    assert res["two_over_one"]["median"] > 0 and res["cache_on_over_off"]["median"] > 0
    assert res["rss_4_boxes"]["boxes"] == 4


TESTED = [f"scripts::{n}" for n in ("bench_eval.py", "bench_inference.py", "make_big_geotiff.py", "bench_paper.py",
                                    "bench_model_step.py", "bench_synth.py", "bench_train.py",
                                    "diagnose_quickstart.py", "make_tiled_folder.py", "bench_archive.py",
                                    "make_bad_corpus.py")]  # run by tests/test_bad_inputs.py


def test_bench_paper_at_reduced_width(tmp_path: Path) -> None:
    out = tmp_path / "paper.json"
    _run("scripts/bench_paper.py", "--preset", "paper-native", "--random-weights", "--small", "--device", "cpu",
         "--threads", "1", "--steps", "1", "--new-tokens", "6", "--boxes", "2", "--out", str(out))
    r = json.loads(out.read_text())
    assert r["timed_steps"] == 1 and r["train_step_s"] > 0 and r["decode_2"]["boxes"] == 2
    assert r["decode_1"]["fps"] > 0 and r["peak_rss_gb"] > 0
