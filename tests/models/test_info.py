"""``clvnet info``: the parameter table of a preset, built on the meta device."""

from __future__ import annotations

import pytest

from clvnet.cli import main
from clvnet.models import load_model_config
from clvnet.models.build import build_model
from clvnet.models.info import count_parameters


def test_info_cli_tiny(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--preset", "tiny"]) == 0
    out = capsys.readouterr().out
    assert "total params" in out and "trainable share" in out and "CGFormer" in out and "mask decoder" in out


def test_info_paper_lora_is_small_share() -> None:
    cfg = load_model_config("paper")
    rows = {r.name: r for r in count_parameters(build_model(cfg, meta=True))}
    llm = rows["LLM 𝓛 (+LoRA)"]
    assert 7.0e9 < llm.total < 8.5e9
    assert 0 < llm.trainable < 0.01 * llm.total                # LoRA only
    assert rows["vision encoder E_v"].trainable == 0 and rows["grounding encoder"].trainable == 0
    assert "other" not in rows                                  # every parameter belongs to a named component


@pytest.mark.parametrize("preset", ["paper", "1.8b"])
def test_info_shows_lora_targets_and_the_paper_share(preset: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--preset", preset]) == 0
    out = capsys.readouterr().out
    assert "LoRA targets (family llama; r=8, alpha=8): down_proj, gate_proj, k_proj, o_proj, q_proj, up_proj, v_proj" in out
    assert "InternLM2: wqkv, wo, w1, w2, w3" in out
    assert "paper's set (LoRA + CGFormer + mask decoder)" in out and "paper: 7.28%" in out
    assert "special-token rows" in out
