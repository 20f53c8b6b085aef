"""`clvnet info`, several boxes per image with cached image features, processor pickling, tokenizer."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
import torch

from clvnet.cli import main
from clvnet.models.clvnet import CLVNet
from clvnet.models.tokenizer import SpecialIds, build_tiny_tokenizer, decode


def test_info_cli_tiny(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--preset", "tiny"]) == 0
    out = capsys.readouterr().out
    assert "total params" in out and "trainable share" in out and "CGFormer" in out and "mask decoder" in out


def test_info_paper_lora_is_small_share() -> None:
    from clvnet.models import load_model_config
    from clvnet.models.builder import build_model
    from clvnet.models.info import count_parameters

    cfg = load_model_config("paper", ["trainable.llm_embeddings=none"])
    rows = {r.name: r for r in count_parameters(build_model(cfg, meta=True))}
    llm = rows["LLM 𝓛 (+LoRA)"]
    assert 7.0e9 < llm.total < 8.5e9
    assert 0 < llm.trainable < 0.01 * llm.total                # LoRA only
    assert rows["vision encoder E_v"].trainable == 0 and rows["grounding encoder"].trainable == 0


def test_several_boxes_one_image_with_cached_features(tiny_model: CLVNet, batch: dict[str, Any]) -> None:
    tiny_model.eval()
    image = batch["image"][:1]
    feats = tiny_model.encode_image(image)
    regions = torch.cat([batch["region"][:1], torch.rand(2, 3, 32, 32)])
    boxes = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.2, 0.2, 0.9, 0.9], [0.5, 0.5, 1.0, 1.0]])
    outs = tiny_model.generate(image, regions, boxes, image_features=feats, max_new_tokens=6)
    assert len(outs) == 3
    single = tiny_model.generate(image, regions[1:2], boxes[1:2], max_new_tokens=6)[0]
    assert single.token_ids == outs[1].token_ids                 # left padding / batching changes nothing
    q = tiny_model.generate(image, regions[:2], boxes[:2], max_new_tokens=4,
                            query=["Describe <BOX>.", "Could you describe the region <BOX> in detail?"])
    assert len(q) == 2
    with pytest.raises(ValueError, match="3 boxes"):
        tiny_model.generate(torch.rand(2, 3, 64, 64), regions, boxes, max_new_tokens=2)


def test_processor_pickles(tiny_model: CLVNet, batch: dict[str, Any]) -> None:
    proc = pickle.loads(pickle.dumps(tiny_model.processor))
    a, b = proc(batch), tiny_model.processor(batch)
    assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["labels"], b["labels"])
    labels = b["labels"][0]
    answer = labels[labels != -100].tolist()
    assert decode(tiny_model.tokenizer, answer[:-1]) == batch["target"][0]   # answer tokens only, then EOS
    assert answer[-1] == tiny_model.reasoner.ids.eos


def test_tokenizer_roundtrip_and_special_ids() -> None:
    text = "Hello, World! The <p> two cars </p> [SEG] near <p> a 3-lane road </p> [SEG]."
    tok = build_tiny_tokenizer([text], vocab_size=300)
    ids = SpecialIds.from_tokenizer(tok)
    enc = tok(text, add_special_tokens=False)["input_ids"]
    assert decode(tok, enc) == text
    assert enc.count(ids.seg) == 2 and ids.seg == tok.convert_tokens_to_ids("[SEG]")
    assert decode(tok, tok("unseen wörds ✓", add_special_tokens=False)["input_ids"]) == "unseen wörds ✓"


def test_bf16_llm_with_fp32_heads(batch: dict[str, Any]) -> None:
    from model_fixtures import micro_config

    from clvnet.models.builder import build_model

    torch.manual_seed(0)
    model = build_model(micro_config(**{"llm.torch_dtype": "bfloat16"}), captions=batch["target"])
    assert model.reasoner.llm.dtype == torch.bfloat16 and model.head_dtype == torch.float32
    out = model(model.processor(batch))
    out.loss.backward()
    assert torch.isfinite(out.loss)
    model.eval()
    assert len(model.generate(batch["image"], batch["region"], batch["box"], max_new_tokens=4)) == 2
    assert model.cfg.generation.max_new_tokens >= 512
