"""clvnet.config: YAML + defaults composition + dotted overrides into typed dataclasses."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from clvnet.config import ConfigError, from_dict, load_config, merge, parse_overrides, save_yaml, to_dict


@dataclass
class LLMCfg:
    hidden_size: int = 64
    layers: int = 2
    dropout: float = 0.0


@dataclass
class ModelCfg:
    name: str = "tiny"
    llm: LLMCfg = field(default_factory=LLMCfg)
    tau: float | None = None
    mode: Literal["all", "negatives_only"] = "all"
    targets: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    size: tuple[int, int] = (128, 128)


@dataclass
class TrainCfg:
    model: ModelCfg = field(default_factory=ModelCfg)
    lr: float = 1.0e-3
    steps: int = 10
    use_amp: bool = False
    output_dir: str = "runs/x"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_only() -> None:
    cfg = load_config(TrainCfg)
    assert cfg == TrainCfg()


def test_yaml_composition_and_overrides(tmp_path: Path) -> None:
    _write(tmp_path / "model" / "tiny.yaml", "name: tiny-yaml\nllm:\n  hidden_size: 32\n  layers: 4\n")
    _write(tmp_path / "common.yaml", "steps: 50\nuse_amp: true\n")
    exp = _write(tmp_path / "exp" / "a.yaml",
                 "defaults:\n  - ../common.yaml\n  - {model: ../model/tiny.yaml}\n"
                 "steps: 70\nmodel:\n  llm:\n    layers: 6\n")
    cfg = load_config(TrainCfg, exp, ["model.llm.dropout=0.1", "lr=0.5", "model.targets=[a, b, c]",
                                      "model.tau=null", "model.mode=negatives_only", "model.size=[64, 32]"])
    assert cfg.model.name == "tiny-yaml"          # from the composed file, under `model:`
    assert cfg.model.llm.hidden_size == 32        # composed
    assert cfg.model.llm.layers == 6              # the file's own keys win over its defaults
    assert cfg.steps == 70 and cfg.use_amp is True
    assert cfg.model.llm.dropout == 0.1 and cfg.lr == 0.5  # dotted overrides win over everything
    assert cfg.model.targets == ["a", "b", "c"] and cfg.model.tau is None
    assert cfg.model.mode == "negatives_only" and cfg.model.size == (64, 32)
    assert cfg.output_dir == "runs/x"             # untouched default


def test_int_is_accepted_for_float_and_tuple_round_trip(tmp_path: Path) -> None:
    cfg = load_config(TrainCfg, overrides=["lr=2", "model.tau=1"])
    assert cfg.lr == 2.0 and isinstance(cfg.lr, float) and cfg.model.tau == 1.0
    save_yaml(cfg, tmp_path / "saved.yaml")
    assert load_config(TrainCfg, tmp_path / "saved.yaml") == cfg
    assert merge(cfg, {"model": {"llm": {"layers": 9}}}).model.llm.layers == 9
    assert to_dict(cfg)["model"]["size"] == [128, 128]


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["model.llm.hiden_size=3"], "model.llm.hiden_size"),
        (["modle.name=x"], "modle"),
        (["model.llm.layers=two"], "model.llm.layers"),
        (["model.llm.layers=2.5"], "model.llm.layers"),
        (["steps=true"], "steps"),            # bool is not an int
        (["use_amp=1"], "use_amp"),           # nor an int a bool
        (["model.mode=some"], "model.mode"),  # not one of the Literal values
        (["model.size=[1, 2, 3]"], "model.size"),
        (["model.targets=[1, x]"], "model.targets[0]"),
        (["model.llm=5"], "model.llm"),
        (["model.tau=abc"], "model.tau"),
    ],
)
def test_bad_keys_and_types_name_the_key(overrides: list[str], key: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"'{key}'")):
        load_config(TrainCfg, overrides=overrides)


def test_unknown_key_in_yaml_names_the_dotted_key(tmp_path: Path) -> None:
    p = _write(tmp_path / "bad.yaml", "model:\n  llm:\n    hidden: 3\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'model\.llm\.hidden'.*hidden_size"):
        load_config(TrainCfg, p)


def test_bad_files_and_override_syntax(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(TrainCfg, tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(TrainCfg, _write(tmp_path / "list.yaml", "- 1\n- 2\n"))
    with pytest.raises(ConfigError, match="bad defaults entry"):
        load_config(TrainCfg, _write(tmp_path / "d.yaml", "defaults:\n  - {a: x.yaml, b: y.yaml}\n"))
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["lr"])
    with pytest.raises(ConfigError, match="conflicts"):
        parse_overrides(["lr=1", "lr.x=2"])
    assert parse_overrides(["a.b.c=1", "a.d=x", "e="]) == {"a": {"b": {"c": 1}, "d": "x"}, "e": ""}


def test_required_fields_without_defaults() -> None:
    @dataclass
    class Need:
        path: str
        n: int = 1

    assert load_config(Need, overrides=["path=x"]) == Need("x", 1)
    with pytest.raises(TypeError):
        from_dict(Need, {"n": 2})


# --------------------------------------------------------------------------- known problems (see report)
def test_exponent_floats_without_dot_are_accepted(tmp_path: Path) -> None:
    assert load_config(TrainCfg, overrides=["lr=3e-4"]).lr == pytest.approx(3e-4)
    assert load_config(TrainCfg, _write(tmp_path / "lr.yaml", "lr: 1e-4\n")).lr == pytest.approx(1e-4)


def test_init_false_fields_do_not_break_load_config() -> None:
    @dataclass
    class WithDerived:
        a: int = 1
        derived: int = field(default=0, init=False)

    assert load_config(WithDerived, overrides=["a=2"]).a == 2


def test_yaml_syntax_errors_name_the_file_or_the_override(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("llm: {hidden_size: 5\nname: [\n")
    with pytest.raises(ConfigError, match=rf"{re.escape(str(bad))}: not valid YAML: .* at line 2, column 5"):
        load_config(ModelCfg, bad)
    (tmp_path / "top.yaml").write_text("defaults:\n  - bad.yaml\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML"):
        load_config(ModelCfg, tmp_path / "top.yaml")
    with pytest.raises(ConfigError, match=r"override 'targets=\[q_proj,': the value is not valid YAML .*quote it"):
        parse_overrides(["targets=[q_proj,"])
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(ConfigError, match=r"bin\.yaml: not valid"):
        load_config(ModelCfg, binary)


def test_yaml_errors_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from clvnet.cli import main

    bad = tmp_path / "exp.yaml"
    bad.write_text("train: {max_steps: 5\noptim: [\n")
    assert main(["train", "--config", str(bad)]) == 2
    assert f"clvnet train: error: {bad}: not valid YAML" in capsys.readouterr().err
    assert main(["train", "--config", "tiny_synthrs", "train.max_steps=[1,"]) == 2
    assert "override 'train.max_steps=[1,': the value is not valid YAML" in capsys.readouterr().err
