"""build_model: assemble CLVNet from its config, load pretrained parts from local folders, set trainables.

Modules never load weights or freeze themselves; this file does both. Each pretrained part loads
from the local folder named in config (``*.pretrained_path``); with no folder the part is built
from its architecture dict (random init, or on the meta device for ``clvnet info``). Trainable
parameters are declared per component in ``cfg.trainable``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from clvnet.models.cgformer import CGFormer, PlainPrompt, RelationHead
from clvnet.models.clvnet import CLVNet
from clvnet.models.config import SPECIAL_TOKENS, TINY_CLIP_VISION, CLVNetConfig
from clvnet.models.grounding import GroundingEncoder
from clvnet.models.mask_decoder import MaskDecoder
from clvnet.models.reasoner import VPReasoner
from clvnet.models.region import RegionEncoder
from clvnet.models.tokenizer import SpecialIds, add_special_tokens, build_tiny_tokenizer
from clvnet.models.vision import Projector, VisionEncoder

log = logging.getLogger(__name__)
_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def _sdpa(config: Any) -> Any:
    config._attn_implementation = "sdpa"
    return config


def build_tokenizer(cfg: CLVNetConfig, captions: Iterable[str] | None = None) -> Any:
    """The LLM's tokenizer (from its folder) or the tiny BPE tokenizer trained on ``captions``."""
    path = cfg.llm.tokenizer_path or cfg.llm.pretrained_path
    if path is not None:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(path, trust_remote_code=cfg.llm.trust_remote_code)
        add_special_tokens(tok)
        return tok
    if captions is None:
        log.warning("no training captions given: the tiny tokenizer is built from the query text only "
                    "(byte-level BPE still encodes any caption, just in more tokens)")
        captions = []
    return build_tiny_tokenizer(captions, cfg.llm.tokenizer_vocab_size)


def _build_vision(cfg: CLVNetConfig) -> VisionEncoder:
    from transformers import CLIPVisionConfig, CLIPVisionModel, ConvNextConfig, ConvNextModel

    vc = cfg.vision
    model: Any
    if vc.kind == "convnext":
        if vc.pretrained_path:
            model = ConvNextModel.from_pretrained(vc.pretrained_path)
        else:
            model = ConvNextModel(ConvNextConfig(**vc.config))
    elif vc.pretrained_path:
        model = CLIPVisionModel.from_pretrained(vc.pretrained_path, attn_implementation="sdpa")
    else:
        model = CLIPVisionModel(_sdpa(CLIPVisionConfig(**(vc.config or TINY_CLIP_VISION))))
    return VisionEncoder(model, kind=vc.kind, select_layer=vc.select_layer, mean=vc.mean, std=vc.std)


def _build_llm(cfg: CLVNetConfig, tokenizer: Any) -> tuple[Any, bool]:
    """The causal LM, resized to the tokenizer; returns (llm, embeddings_resized)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    lc = cfg.llm
    dtype = _DTYPES[lc.torch_dtype] if lc.torch_dtype else None
    llm: Any
    if lc.pretrained_path:
        llm = AutoModelForCausalLM.from_pretrained(lc.pretrained_path, trust_remote_code=lc.trust_remote_code,
                                                   dtype=dtype)
    else:
        kwargs = dict(lc.config)
        model_type = kwargs.pop("model_type", "llama")
        if tokenizer is not None:
            kwargs["vocab_size"] = len(tokenizer)
        else:
            kwargs["vocab_size"] = int(kwargs.get("vocab_size", 32000)) + len(SPECIAL_TOKENS)
        conf = AutoConfig.for_model(model_type, **kwargs)
        if tokenizer is not None:
            for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
                setattr(conf, name, getattr(tokenizer, name))
        llm = AutoModelForCausalLM.from_config(_sdpa(conf), trust_remote_code=lc.trust_remote_code, dtype=dtype)
        return llm, False
    resized = tokenizer is not None and len(tokenizer) != llm.get_input_embeddings().weight.shape[0]
    if resized:
        llm.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    return llm, resized


def _sam_parts(kind: str, path: str | None, cache: dict[str, Any]) -> Any:
    if path is None:
        return None
    if path not in cache:
        from transformers import Sam2Model, SamModel

        cache[path] = (Sam2Model if kind == "sam2" else SamModel).from_pretrained(path)
    return cache[path]


def _build_grounding(cfg: CLVNetConfig, vision: VisionEncoder, width: int, cache: dict[str, Any]) -> GroundingEncoder:
    from transformers import Sam2PromptEncoderConfig
    from transformers.models.sam2.modeling_sam2 import Sam2PositionalEmbedding

    gc = cfg.grounding
    common: dict[str, Any] = {"image_size": gc.image_size, "mean": gc.mean, "std": gc.std}
    positional = Sam2PositionalEmbedding(Sam2PromptEncoderConfig(hidden_size=width))
    if gc.kind == "shared":
        return GroundingEncoder("shared", positional=positional, vision_width=vision.width, channels=width,
                                stem_channels=gc.stem_channels, high_res=cfg.mask_decoder.kind == "sam2",
                                patch_size=vision.patch_size, pyramid_widths=vision.pyramid_widths, **common)
    if gc.kind == "conv":
        if cfg.mask_decoder.kind != "sam2":
            raise ValueError("grounding.kind=conv feeds high-resolution maps: it needs mask_decoder.kind=sam2")
        return GroundingEncoder("conv", positional=positional, vision_width=vision.width, channels=width,
                                conv_channels=gc.conv_channels, fuse_vision=gc.fuse_vision,
                                conv_embed_stride=gc.conv_embed_stride, **common)
    sam = _sam_parts(gc.kind, gc.pretrained_path, cache)
    if sam is not None:
        mem = getattr(sam, "no_memory_embedding", None)
        return GroundingEncoder(gc.kind, positional=sam.shared_image_embedding, encoder=sam.vision_encoder,
                                no_memory_embedding=mem, **common)
    if gc.kind == "sam2":
        from transformers import Sam2HieraDetConfig, Sam2VisionConfig, Sam2VisionModel

        backbone = _sdpa(Sam2HieraDetConfig(**gc.backbone))
        vconf = _sdpa(Sam2VisionConfig(backbone_config=backbone, **gc.vision))
        enc: nn.Module = Sam2VisionModel(vconf)
        mem = nn.Parameter(torch.zeros(1, 1, width))
        return GroundingEncoder("sam2", positional=positional, encoder=enc, no_memory_embedding=mem, **common)
    from transformers import SamVisionConfig, SamVisionModel

    enc = SamVisionModel(_sdpa(SamVisionConfig(**gc.vision)))
    return GroundingEncoder("sam", positional=positional, encoder=enc, **common)


def _build_mask_decoder(cfg: CLVNetConfig, prompt_dim: int, cache: dict[str, Any]) -> MaskDecoder:
    mc = cfg.mask_decoder
    sam = _sam_parts(mc.kind, mc.pretrained_path, cache)
    if sam is not None:
        dec, no_mask = sam.mask_decoder, sam.prompt_encoder.no_mask_embed.weight[0]
    elif mc.kind == "sam2":
        from transformers import Sam2MaskDecoderConfig
        from transformers.models.sam2.modeling_sam2 import Sam2MaskDecoder

        dconf = _sdpa(Sam2MaskDecoderConfig(**{**mc.config, "dynamic_multimask_via_stability": False}))
        dec, no_mask = Sam2MaskDecoder(dconf), None
    else:
        from transformers import SamMaskDecoderConfig
        from transformers.models.sam.modeling_sam import SamMaskDecoder

        dec, no_mask = SamMaskDecoder(_sdpa(SamMaskDecoderConfig(**mc.config))), None
    if hasattr(dec, "dynamic_multimask_via_stability"):
        dec.dynamic_multimask_via_stability = False     # same single-mask path in train and eval
    return MaskDecoder(dec, mc.kind, prompt_dim, no_mask)


def build_model(cfg: CLVNetConfig, captions: Iterable[str] | None = None, *, tokenizer: Any = None,
                meta: bool = False) -> CLVNet:
    """Build CLV-Net.

    Args:
        cfg: the model config.
        captions: training texts for the tiny tokenizer (ignored when the LLM has a tokenizer folder).
        tokenizer: use this tokenizer (e.g. the one saved with a checkpoint).
        meta: build on the meta device without any weights or tokenizer (parameter counting).

    Returns:
        The model, with ``requires_grad`` set from ``cfg.trainable``.
    """
    if meta and (cfg.llm.pretrained_path or cfg.vision.pretrained_path):
        log.info("meta build: pretrained paths are ignored, architectures come from the config dicts")
        cfg = _without_paths(cfg)
    if tokenizer is None and not meta:
        tokenizer = build_tokenizer(cfg, captions)
    elif tokenizer is not None:
        add_special_tokens(tokenizer)
    ctx = torch.device("meta") if meta else contextlib.nullcontext()
    cache: dict[str, Any] = {}
    with ctx:
        vision = _build_vision(cfg)
        llm, resized = _build_llm(cfg, tokenizer)
        d = int(llm.get_input_embeddings().weight.shape[1])
        ids = SpecialIds.from_tokenizer(tokenizer) if tokenizer is not None else SpecialIds(0, 1, 2, 3, 4, 5, 6, None)
        reasoner = VPReasoner(llm, ids)
        projector = Projector(vision.width, d, cfg.projector.hidden_size)
        rc = cfg.region
        region = RegionEncoder(vision.width, mode=rc.mode, grid=rc.grid, num_detections=rc.num_detections,
                               sampling=rc.sampling, box_hidden=rc.box_embed_hidden)
        cg: nn.Module = (CGFormer(d, cfg.cgformer.num_heads, cfg.cgformer.threshold) if cfg.cgformer.enabled
                         else PlainPrompt(d))
        mask_decoder = _build_mask_decoder(cfg, d, cache)
        grounding = _build_grounding(cfg, vision, mask_decoder.width, cache)
        width = mask_decoder.width
        a = cfg.loss.align_dim
        model = CLVNet(
            cfg, tokenizer=tokenizer, vision=vision, projector=projector, region=region, reasoner=reasoner,
            cgformer=cg, grounding=grounding, mask_decoder=mask_decoder,
            text_relation=RelationHead(d) if (cfg.loss.rec and not cfg.cgformer.enabled) else None,
            visual_relation=RelationHead(width) if cfg.loss.rec else None,
            mask_proj=nn.Linear(width, a) if cfg.loss.csc else None,
            phrase_proj=nn.Linear(d, a) if cfg.loss.csc else None,
            n_image_tokens=_n_image_tokens(cfg, vision))
    model.pretrained_prefixes = _pretrained_prefixes(cfg)
    _set_trainable(model, cfg)
    model.resized_embedding_keys = tuple(_embedding_keys(model)) if resized else ()
    return model


def _n_image_tokens(cfg: CLVNetConfig, vision: VisionEncoder) -> int:
    side = vision.image_size // vision.patch_size
    if side % max(cfg.vision.llm_pool, 1):
        raise ValueError(f"vision grid {side} is not divisible by vision.llm_pool={cfg.vision.llm_pool}")
    return int((side // max(cfg.vision.llm_pool, 1)) ** 2)


def _without_paths(cfg: CLVNetConfig) -> CLVNetConfig:
    import copy

    cfg = copy.deepcopy(cfg)
    cfg.vision.pretrained_path = cfg.llm.pretrained_path = cfg.llm.tokenizer_path = None
    cfg.grounding.pretrained_path = cfg.mask_decoder.pretrained_path = None
    return cfg


def _pretrained_prefixes(cfg: CLVNetConfig) -> tuple[str, ...]:
    out = []
    if cfg.vision.pretrained_path:
        out.append(f"vision.{cfg.vision.kind}.")
    if cfg.llm.pretrained_path:
        out.append("reasoner.llm.")
    if cfg.grounding.pretrained_path and cfg.grounding.kind != "shared":
        out += ["grounding.encoder.", "grounding.positional.", "grounding.no_memory_embedding"]
    if cfg.mask_decoder.pretrained_path:
        out += ["mask_decoder.decoder.", "mask_decoder.no_mask_embed"]
    return tuple(out)


def _embedding_keys(model: CLVNet) -> list[str]:
    llm = model.reasoner.llm
    targets = {id(llm.get_input_embeddings().weight)}
    out_emb = llm.get_output_embeddings()
    if out_emb is not None:
        targets.add(id(out_emb.weight))
    return [n for n, p in model.named_parameters() if id(p) in targets]


def _set_trainable(model: CLVNet, cfg: CLVNetConfig) -> None:
    """Apply ``cfg.trainable`` (per component) and LoRA."""
    t = cfg.trainable
    model.requires_grad_(False)
    if t.vision:
        model.vision.requires_grad_(True)
        _freeze(model.vision, model.vision.unused_parameters())
    model.projector.requires_grad_(t.projector)
    for merge in (model.grounding_proj, model.token_merge):
        if merge is not None:
            merge.requires_grad_(t.projector)
    model.region.requires_grad_(t.region)
    for mark in (model.box_mark_llm, model.box_mark_mask):
        if mark is not None:
            mark.requires_grad_(t.region)
    model.cgformer.requires_grad_(t.cgformer)
    if t.grounding:
        model.grounding.requires_grad_(True)
    if t.mask_decoder:
        model.mask_decoder.requires_grad_(True)
        _freeze(model.mask_decoder, model.mask_decoder.unused_parameters())
    for m in (model.text_relation, model.visual_relation, model.mask_proj, model.phrase_proj):
        if m is not None:
            m.requires_grad_(t.align)
    if hasattr(model, "logit_scale"):
        model.logit_scale.requires_grad_(t.align)
    if t.llm == "full":
        model.reasoner.llm.requires_grad_(True)
    elif t.llm == "lora":
        from peft import LoraConfig, get_peft_model

        lc = cfg.llm.lora
        model.reasoner.llm = get_peft_model(model.reasoner.llm, LoraConfig(
            r=lc.r, lora_alpha=lc.alpha, lora_dropout=lc.dropout, target_modules=list(lc.target_modules)))
    llm = model.reasoner.llm
    if t.llm_embeddings in ("input", "both"):
        llm.get_input_embeddings().weight.requires_grad_(True)
    out = llm.get_output_embeddings()
    if t.llm_embeddings in ("output", "both") and out is not None:
        out.weight.requires_grad_(True)


def _freeze(module: nn.Module, names: list[str]) -> None:
    params = dict(module.named_parameters())
    for n in names:
        params[n].requires_grad_(False)
