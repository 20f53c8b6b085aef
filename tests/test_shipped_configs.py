"""Every YAML shipped in ``clvnet/configs`` loads through the real loaders, and names resolve from anywhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from clvnet.cli import main
from clvnet.config import ConfigError, load_config, packaged_configs, resolve_config
from clvnet.engine.config import DataConfig, TrainConfig
from clvnet.models import CLVNetConfig
from clvnet.models.config import TrainableConfig

ROOT = packaged_configs()
SHIPPED = sorted(ROOT.rglob("*.yaml"))
LOADERS = {"model": CLVNetConfig, "experiments": TrainConfig, "data": DataConfig}


def test_configs_ship_inside_the_package() -> None:
    assert ROOT.parent == Path(__import__("clvnet").__file__).parent
    assert {p.parent.relative_to(ROOT).parts[0] for p in SHIPPED} == {*LOADERS, "accelerate"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_config_loads(path: Path) -> None:
    section = path.relative_to(ROOT).parts[0]
    if path.parent.name == "trainable":                          # named trainable policies of the presets
        assert isinstance(load_config(TrainableConfig, path), TrainableConfig)
        return
    if section == "accelerate":
        from accelerate.commands.config.config_args import load_config_from_file

        cfg = load_config_from_file(str(path))
        assert cfg.num_processes >= 1
        return
    cfg = load_config(LOADERS[section], path)
    if isinstance(cfg, TrainConfig):
        assert cfg.model.name and cfg.output_dir


def test_names_resolve_from_any_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    want = ROOT / "experiments" / "quickstart.yaml"
    for name in ("configs/experiments/quickstart.yaml", "experiments/quickstart", "experiments/quickstart.yaml"):
        assert resolve_config(name) == want
    assert resolve_config("quickstart", "experiments") == want
    assert load_config(CLVNetConfig, "paper", section="model").name == "paper"
    local = tmp_path / "experiments" / "quickstart.yaml"          # a file that exists wins over the shipped one
    local.parent.mkdir()
    local.write_text("output_dir: mine\n")
    assert resolve_config("experiments/quickstart.yaml") == Path("experiments/quickstart.yaml")


def test_unknown_name_lists_the_shipped_configs() -> None:
    with pytest.raises(ConfigError, match=r"'tinyy'.*shipped model configs: .*paper.*tiny"):
        resolve_config("tinyy", "model")


def test_configs_cli_lists_and_prints_paths(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["configs", "experiments"]) == 0
    listed = capsys.readouterr().out.split()
    assert "quickstart" in listed and "tiny_synthrs" in listed
    assert main(["configs", "--path", "accelerate/ddp"]) == 0
    assert Path(capsys.readouterr().out.strip()) == ROOT / "accelerate" / "ddp.yaml"
    assert main(["configs", "nope"]) == 2
    assert "sections:" in capsys.readouterr().err


def _flat(d: object, prefix: str = "") -> dict[str, object]:
    if isinstance(d, dict):
        out: dict[str, object] = {}
        for k, v in d.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): d}


PAPER_ROWS = {
    "table2_no_prompt": {"model.use_box_prompt": False},
    "table2_internlm2_1.8b": {"model.name": "1.8b", "model.llm.config.hidden_size": 2048},
    "table3_no_cgformer": {"model.cgformer.enabled": False},
    "table3_sam": {"model.grounding.kind": "sam", "model.mask_decoder.kind": "sam"},
    "table4_csc_only": {"model.loss.rec": False},
    "table4_rec_only": {"model.loss.csc": False},
    "table4_neither": {"model.loss.csc": False, "model.loss.rec": False},
    "table5_lambda_0": {"model.loss.sralign_lambda": 0.0},
    "table5_lambda_0.5": {"model.loss.sralign_lambda": 0.5},
    "table5_lambda_5": {"model.loss.sralign_lambda": 5.0},
    "grandf": {"data.train": "data/grandf/train.jsonl"},
}


@pytest.mark.parametrize("row", sorted(PAPER_ROWS))
def test_each_paper_experiment_changes_only_its_row(row: str) -> None:
    from clvnet.config import to_dict

    base = _flat(to_dict(load_config(TrainConfig, "paper", section="experiments")))
    exp = _flat(to_dict(load_config(TrainConfig, f"paper/{row}", section="experiments")))
    changed = {k for k in set(base) | set(exp) if base.get(k) != exp.get(k)} - {"output_dir"}
    for key, value in PAPER_ROWS[row].items():
        assert exp[key] == value, key
    allowed = {"table2_internlm2_1.8b": ("model.name", "model.llm."),
               "table3_sam": ("model.grounding.", "model.mask_decoder."),
               "grandf": ("data.",)}.get(row, tuple(PAPER_ROWS[row]))
    assert changed and all(k.startswith(allowed) for k in changed), sorted(changed)
    assert exp["output_dir"] == f"runs/paper/{row}"


def test_the_sam_row_builds_sam_on_the_meta_device() -> None:
    from transformers import SamVisionModel
    from transformers.models.sam.modeling_sam import SamMaskDecoder

    from clvnet.models import build_model

    cfg = load_config(TrainConfig, "paper/table3_sam", section="experiments")
    model = build_model(cfg.model, meta=True)
    assert isinstance(model.grounding.encoder, SamVisionModel)
    assert isinstance(model.mask_decoder.decoder, SamMaskDecoder)
    assert 0.6e9 < sum(p.numel() for p in model.grounding.parameters()) < 0.7e9      # SAM ViT-H
