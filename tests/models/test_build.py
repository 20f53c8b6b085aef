"""clvnet.models.build: the pretrained-folder path (tiny random CLIP / Llama / SAM2 saved with save_pretrained
and loaded back), trainable parameters, and strict checkpoints.

This is the code path real weights take (paper preset): frozen encoders, LoRA on the LLM, new
special tokens resized into the embeddings, and checkpoints that hold only trained / new tensors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from model_fixtures import TARGETS, micro_config

from clvnet.models.build import build_model, checkpoint_keys, from_pretrained, save_pretrained
from clvnet.models.modeling import CLVNet


def _base_tokenizer() -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(TARGETS * 4, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>")


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    from transformers import (
        CLIPVisionConfig,
        CLIPVisionModel,
        LlamaConfig,
        LlamaForCausalLM,
        Sam2Config,
        Sam2HieraDetConfig,
        Sam2MaskDecoderConfig,
        Sam2Model,
        Sam2PromptEncoderConfig,
        Sam2VisionConfig,
    )

    root = tmp_path_factory.mktemp("pretrained")
    torch.manual_seed(1)
    CLIPVisionModel(CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                     image_size=64, patch_size=8)).save_pretrained(root / "clip")
    tok = _base_tokenizer()
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                                 bos_token_id=1, eos_token_id=2)).save_pretrained(root / "llm")
    tok.save_pretrained(root / "llm")
    hiera = Sam2HieraDetConfig(hidden_size=16, num_attention_heads=1, image_size=[128, 128],
                               blocks_per_stage=[1, 2, 2, 1], embed_dim_per_stage=[16, 32, 64, 128],
                               num_attention_heads_per_stage=[1, 1, 2, 2], global_attention_blocks=[2, 4],
                               window_size_per_stage=[8, 4, 4, 2], window_positional_embedding_background_size=[4, 4])
    vision = Sam2VisionConfig(backbone_config=hiera, backbone_channel_list=[128, 64, 32, 16],
                              backbone_feature_sizes=[[32, 32], [16, 16], [8, 8]], fpn_hidden_size=32)
    Sam2Model(Sam2Config(vision_config=vision,
                         prompt_encoder_config=Sam2PromptEncoderConfig(hidden_size=32, image_size=128, patch_size=16),
                         mask_decoder_config=Sam2MaskDecoderConfig(hidden_size=32, mlp_dim=64, num_attention_heads=2,
                                                                   iou_head_hidden_dim=32))).save_pretrained(root / "sam2")
    return {k: str(root / k) for k in ("clip", "llm", "sam2")}


def _paper_like(folders: dict[str, str]) -> Any:
    return micro_config(**{
        "vision.pretrained_path": folders["clip"], "llm.pretrained_path": folders["llm"],
        "grounding.kind": "sam2", "grounding.pretrained_path": folders["sam2"], "grounding.image_size": 128,
        "mask_decoder.pretrained_path": folders["sam2"],
        "trainable.vision": False, "trainable.grounding": False, "trainable.llm": "lora",
        "llm.lora.r": 4, "llm.lora.target_modules": ["q_proj", "v_proj"]})


def test_weights_come_from_folders_and_trainables(folders: dict[str, str], batch: dict[str, Any]) -> None:
    from transformers import CLIPVisionModel, Sam2Model

    model = build_model(_paper_like(folders))
    clip = CLIPVisionModel.from_pretrained(folders["clip"])
    sam = Sam2Model.from_pretrained(folders["sam2"])
    assert torch.equal(model.vision.clip.embeddings.patch_embedding.weight,
                       clip.embeddings.patch_embedding.weight)
    for (n, p), (_, q) in zip(model.grounding.encoder.named_parameters(), sam.vision_encoder.named_parameters()):
        assert torch.equal(p, q), n
    ids = model.reasoner.ids
    assert len({ids.image, ids.box, ids.p_open, ids.p_close, ids.seg}) == 5 and ids.seg >= 300 - 10
    # gradients reach exactly the declared trainables; LoRA counts match r·(in + out) per target
    lora = {n: p for n, p in model.named_parameters() if "lora_" in n}
    d, kv = 64, 2 * (64 // 4)
    assert sum(p.numel() for p in lora.values()) == 2 * 4 * ((d + d) + (d + kv))
    assert all(p.requires_grad for p in lora.values())
    base_llm = {n: p for n, p in model.reasoner.llm.named_parameters() if "lora_" not in n and p.requires_grad}
    # only the special tokens' own rows train, not the pretrained embedding matrix or LM head
    assert sorted(base_llm) == ["base_model.model.lm_head.rows", "base_model.model.model.embed_tokens.rows"]
    assert all(p.shape == (5, 64) for p in base_llm.values())
    assert not any(p.requires_grad for p in model.vision.parameters())
    assert not any(p.requires_grad for p in model.grounding.parameters())
    out = model(model.processor(batch))
    out.loss.backward()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n, p in model.named_parameters() if p.grad is not None}


def test_step_keeps_frozen_bit_identical_and_checkpoint(folders: dict[str, str], batch: dict[str, Any],
                                                        tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model(_paper_like(folders))
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    trained = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    inputs = model.processor(batch)
    model(inputs).loss.backward()
    opt.step()
    params = dict(model.named_parameters())
    assert all(torch.equal(params[n], v) for n, v in frozen.items())
    assert sum(not torch.equal(params[n], v) for n, v in trained.items()) > 0.9 * len(trained)

    ckpt = save_pretrained(model, tmp_path / "ckpt")
    keys = set(checkpoint_keys(model))
    assert not any(k.startswith(("vision.clip.", "grounding.encoder.")) for k in keys)
    assert any("lora_A" in k for k in keys) and any(k.endswith("embed_tokens.rows") for k in keys)
    assert not any(k.endswith(("embed_tokens.base.weight", "lm_head.base.weight")) for k in keys)
    assert (ckpt / "adapter" / "adapter_model.safetensors").is_file()
    loaded = from_pretrained(ckpt).eval()
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(inputs).loss, loaded(inputs).loss)

    cfg = yaml.safe_load((ckpt / "config.yaml").read_text())
    cfg["cgformer"]["enabled"] = False
    (ckpt / "config.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(ValueError, match=r"missing keys .*cgformer\.mlp.*unexpected keys .*cgformer\.mhca"):
        from_pretrained(ckpt)


def test_missing_key_is_named(tiny_model: CLVNet, tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    ckpt = save_pretrained(tiny_model, tmp_path / "ckpt")
    tensors = load_file(str(ckpt / "model.safetensors"))
    del tensors["projector.fc1.weight"]
    save_file(tensors, str(ckpt / "model.safetensors"))
    with pytest.raises(ValueError, match=r"missing keys \(1\): projector\.fc1\.weight"):
        from_pretrained(ckpt)


def test_save_load_roundtrip(tiny_model: CLVNet, batch: dict[str, Any], tmp_path: Path) -> None:
    tiny_model.eval()
    save_pretrained(tiny_model, tmp_path / "ckpt")
    assert {p.name for p in (tmp_path / "ckpt").iterdir()} >= {"config.yaml", "model.safetensors", "tokenizer"}
    loaded = from_pretrained(tmp_path / "ckpt").eval()
    inputs = tiny_model.processor(batch)
    with torch.no_grad():
        a, b = tiny_model(inputs), loaded(inputs)
    assert torch.equal(a.loss, b.loss)
    assert torch.equal(a.mask_logits, b.mask_logits)


def test_trainable_count_tiny(tiny_model: CLVNet) -> None:
    total = sum(p.numel() for p in tiny_model.parameters())
    unused = dict(tiny_model.mask_decoder.named_parameters())
    unused_n = sum(unused[n].numel() for n in tiny_model.mask_decoder.unused_parameters())
    unused_n += sum(p.numel() for p in tiny_model.vision.clip.post_layernorm.parameters())
    assert sum(p.numel() for p in tiny_model.parameters() if p.requires_grad) == total - unused_n


def test_whole_embedding_matrices_are_a_named_extra(folders: dict[str, str]) -> None:
    model = build_model(micro_config(**{"llm.pretrained_path": folders["llm"], "trainable.llm": "lora",
                                        "trainable.llm_embeddings": "both"}))
    names = {n for n, p in model.reasoner.llm.named_parameters() if p.requires_grad and "lora_" not in n}
    assert {"base_model.model.model.embed_tokens.base.weight", "base_model.model.lm_head.base.weight"} <= names


@pytest.mark.parametrize("preset, total, trainable", [
    ("tiny", 1_044_222, 1_032_973),
    ("paper", 8_520_843_894, 266_240_481),
    ("1.8b", 2_480_566_902, 74_562_017),
])
def test_trainable_counts_are_pinned(preset: str, total: int, trainable: int) -> None:
    from clvnet.models import load_model_config

    model = build_model(load_model_config(preset), meta=True)
    assert sum(p.numel() for p in model.parameters()) == total
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == trainable
