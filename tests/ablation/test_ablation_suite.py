"""The variants: each an ordinary experiment config that changes one switch; runs that are the same are one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from clvnet.ablation.suite import PAPER_SUITE, Variant, effective_config, plan, select
from clvnet.config import ConfigError, load_config, packaged_configs, to_dict
from clvnet.engine.config import TrainConfig

FULL_YAML = packaged_configs() / "experiments" / "synthrs_ablation" / "full.yaml"


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def _load(name: str, *over: str) -> TrainConfig:
    return load_config(TrainConfig, name, list(over), section="experiments")


def test_full_model_is_the_quickstart_config() -> None:
    full, quick = to_dict(_load("synthrs_ablation/full")), to_dict(_load("quickstart"))
    full.pop("output_dir")
    quick.pop("output_dir")
    assert full == quick


SWITCHES = {
    "no_box_prompt": {"model.use_box_prompt": False},
    "no_cgformer": {"model.cgformer.enabled": False},
    "sam_decoder": {"model.mask_decoder.kind": "sam"},
    "no_csc": {"model.loss.csc": False},
    "no_rec": {"model.loss.rec": False},
    "no_sralign": {"model.loss.csc": False, "model.loss.rec": False},
    "lambda_0": {"model.loss.sralign_lambda": 0.0},
    "lambda_0_5": {"model.loss.sralign_lambda": 0.5},
    "lambda_1": {"model.loss.sralign_lambda": 1.0},
    "lambda_5": {"model.loss.sralign_lambda": 5.0},
    "no_feed_llm": {"model.grounding.feed_llm": False},
    "no_box_mark": {"model.region.box_mark": "none"},
    "greedy": {"model.generation.num_beams": 1},
}


@pytest.mark.parametrize("name", sorted(SWITCHES))
def test_each_variant_changes_only_its_switch(name: str) -> None:
    full = _flat(to_dict(_load("synthrs_ablation/full")))
    got = _flat(to_dict(_load(f"synthrs_ablation/{name}")))
    diff = {k: got[k] for k in got if k != "output_dir" and got[k] != full[k]}
    # a switch the full model already has (say the quickstart's lambda becomes 1) changes nothing
    assert diff == {k: v for k, v in SWITCHES[name].items() if full[k] != v}
    assert got["output_dir"] == f"runs/synthrs_ablation/{name}"


def test_suite_covers_every_shipped_variant_config() -> None:
    shipped = {p.stem for p in FULL_YAML.parent.glob("*.yaml")}
    assert shipped == {v.name for v in PAPER_SUITE} == {"full", *SWITCHES}


def test_same_runs_are_planned_once() -> None:
    planned = {p.variant.name: p for p in plan(list(PAPER_SUITE), [], {"train": 1})}
    assert all(p.error is None for p in planned.values())
    # lambda = 0 is "neither loss": one run on two rows
    assert planned["lambda_0"].eval_key == planned["no_sralign"].eval_key
    assert planned["lambda_0"].same_as == ["no_sralign"] and planned["no_sralign"].same_as == ["lambda_0"]
    assert planned["lambda_0"].trained_by == "no_sralign"
    # greedy decoding evaluates the full model's training
    assert planned["greedy"].train_key == planned["full"].train_key
    assert planned["greedy"].eval_key != planned["full"].eval_key and planned["greedy"].trained_by == "full"
    others = [p for n, p in planned.items() if n not in ("lambda_0", "no_sralign", "greedy", "full")]
    assert len({p.train_key for p in others} | {planned["full"].train_key, planned["lambda_0"].train_key}) == 12


def test_dedup_compares_resolved_configs_not_names(tmp_path: Path) -> None:
    # as if the quickstart's lambda became 1: the lambda = 1 row is then the full model's run
    base = tmp_path / "base.yaml"
    base.write_text(f"defaults:\n  - {FULL_YAML}\nmodel: {{loss: {{sralign_lambda: 1}}}}\n")
    lam1 = tmp_path / "lam1.yaml"
    lam1.write_text(f"defaults:\n  - {base}\nmodel: {{loss: {{sralign_lambda: 1.0}}}}\noutput_dir: elsewhere\n")
    half = tmp_path / "half.yaml"
    half.write_text(f"defaults:\n  - {base}\nmodel: {{loss: {{sralign_lambda: 0.5}}}}\n")
    got = plan([Variant("full", "full", str(base)), Variant("lambda_1", "λ = 1", str(lam1)),
                Variant("lambda_0_5", "λ = 0.5", str(half))], [], {})
    assert got[1].same_as == ["full"] and got[0].same_as == ["lambda_1"] and got[2].same_as == []


def test_keys_ignore_run_local_settings_but_not_the_data() -> None:
    a = plan(list(PAPER_SUITE[:1]), ["train.cpu_threads=1", "output_dir=a", "train.seed=3"], {"train": 16})[0]
    b = plan(list(PAPER_SUITE[:1]), ["train.cpu_threads=2", "output_dir=b", "data.num_workers=4"],
             {"train": 16})[0]
    c = plan(list(PAPER_SUITE[:1]), [], {"train": 32})[0]
    d = plan(list(PAPER_SUITE[:1]), ["optim.lr=1e-4"], {"train": 16})[0]
    assert a.train_key == b.train_key and a.eval_key == b.eval_key
    assert c.train_key != a.train_key and d.train_key != a.train_key


def test_effective_config_drops_switched_off_terms() -> None:
    off = effective_config(_load("synthrs_ablation/no_sralign"))
    zero = effective_config(_load("synthrs_ablation/lambda_0"))
    assert off == zero and off["model.loss.sralign_lambda"] == 0.0 and "model.loss.align_dim" not in off
    no_csc = effective_config(_load("synthrs_ablation/no_csc"))
    assert "model.loss.csc_denominator" not in no_csc and "model.loss.align_dim" in no_csc


def test_a_variant_that_does_not_resolve_keeps_its_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"defaults:\n  - {FULL_YAML}\nmodel: {{no_such_key: 1}}\n")
    got = plan([PAPER_SUITE[0], Variant("bad", "bad", str(bad))], [], {})
    assert got[0].error is None and got[1].cfg is None
    assert got[1].error is not None and "model.no_such_key" in got[1].error


def test_select(tmp_path: Path) -> None:
    assert [v.name for v in select("paper", None)] == [v.name for v in PAPER_SUITE]
    assert [v.name for v in select("paper", ["greedy", "full"])] == ["full", "greedy"]   # suite order
    mine = tmp_path / "mine.yaml"
    mine.write_text(f"defaults:\n  - {FULL_YAML}\n")
    assert [v.name for v in select("paper", ["full", str(mine)])] == ["full", "mine"]
    with pytest.raises(ValueError, match=r"unknown variant 'nope'.*no_cgformer"):
        select("paper", ["nope"])
    with pytest.raises(ValueError, match="not found"):
        select("paper", [str(tmp_path / "missing.yaml")])
    (tmp_path / "full.yaml").write_text(mine.read_text())
    with pytest.raises(ValueError, match="two variants are named 'full'"):
        select("paper", ["full", str(tmp_path / "full.yaml")])
    with pytest.raises(ValueError, match="unknown suite"):
        select("nope", None)
    with pytest.raises(ConfigError):
        load_config(TrainConfig, "synthrs_ablation/nope", section="experiments")
