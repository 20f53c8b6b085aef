"""``vision.llm_pool_mode: concat``: space-to-depth LLM image tokens mixed by a learned linear map."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from model_fixtures import micro_config

from clvnet.models import CLVNet
from clvnet.models.builder import build_model
from clvnet.models.vision import TokenMerge, grid_to_tokens


def _model(batch: dict[str, Any], mode: str, **over: Any) -> CLVNet:
    torch.manual_seed(0)
    return build_model(micro_config(**{"vision.llm_pool_mode": mode, **over}), captions=batch["target"])


def test_grid_to_tokens_concat_stacks_each_cell() -> None:
    grid = torch.arange(2 * 4 * 4, dtype=torch.float32).view(1, 2, 4, 4)
    tokens = grid_to_tokens(grid, 2, concat=True)
    assert tokens.shape == (1, 4, 8)
    # token 1 is the top-right 2x2 cell; channel-major: channel 0's four patches, then channel 1's
    assert tokens[0, 1].tolist() == [2, 3, 6, 7, 18, 19, 22, 23]
    assert torch.equal(grid_to_tokens(grid, 2).view(1, 4, 2), F.avg_pool2d(grid, 2).flatten(2).transpose(1, 2))


def test_fresh_merge_is_the_average_then_learns_more() -> None:
    torch.manual_seed(0)
    merge = TokenMerge(6, 2)
    grid = torch.randn(3, 6, 8, 8)
    assert torch.allclose(merge(grid), grid_to_tokens(grid, 2), atol=1e-6)
    with torch.no_grad():
        merge.linear.weight.add_(0.1 * torch.randn_like(merge.linear.weight))
    assert not torch.allclose(merge(grid), grid_to_tokens(grid, 2), atol=1e-3)


@pytest.mark.parametrize("feed_llm", [False, True])
def test_fresh_concat_model_matches_avg_and_trains_the_merge(batch: dict[str, Any], feed_llm: bool) -> None:
    over = {"grounding.feed_llm": feed_llm}
    concat, avg = _model(batch, "concat", **over), _model(batch, "avg", **over)
    assert concat.token_merge is not None and avg.token_merge is None
    own = {k: v for k, v in avg.state_dict().items() if not k.startswith("grounding_proj")}
    missing, unexpected = concat.load_state_dict(own, strict=False)
    assert not unexpected
    assert {k.split(".")[0] for k in missing} == ({"token_merge", "grounding_proj"} if feed_llm else {"token_merge"})
    if feed_llm:
        assert concat.grounding_proj is not None
        assert concat.grounding_proj.in_features == 4 * concat.mask_decoder.width
    inputs = concat.processor(batch)
    concat.eval(), avg.eval()
    with torch.no_grad():
        assert torch.allclose(concat.encode_image(inputs["image"]).image_tokens,
                              avg.encode_image(inputs["image"]).image_tokens, atol=1e-5)
    concat.train()
    concat(inputs).loss.backward()
    weight = concat.token_merge.linear.weight
    assert weight.requires_grad and weight.grad is not None and weight.grad.abs().sum() > 0
    if feed_llm:
        assert concat.grounding_proj is not None
        assert concat.grounding_proj.weight.grad is not None and concat.grounding_proj.weight.grad.abs().sum() > 0


def test_checkpoint_round_trip_and_strict_mismatch(batch: dict[str, Any], tmp_path: Path) -> None:
    model = _model(batch, "concat").eval()
    assert model.token_merge is not None
    with torch.no_grad():
        model.token_merge.linear.weight.normal_()
    model.save_pretrained(tmp_path / "ckpt")
    again = CLVNet.from_pretrained(tmp_path / "ckpt")
    assert again.token_merge is not None
    assert torch.equal(again.token_merge.linear.weight, model.token_merge.linear.weight)
    plain = tmp_path / "plain"
    _model(batch, "avg").save_pretrained(plain)
    (tmp_path / "ckpt" / "config.yaml").write_text((plain / "config.yaml").read_text())
    with pytest.raises(ValueError, match="token_merge"):
        CLVNet.from_pretrained(tmp_path / "ckpt")
