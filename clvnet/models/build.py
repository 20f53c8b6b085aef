"""Build CLV-Net from its config, load and save checkpoints, and set which parameters train.

Modules never load weights or freeze themselves; this file does both. Each pretrained part loads from
the local folder named in config (``*.pretrained_path``); with no folder the part is built from its
architecture dict (random init, or on the meta device for ``clvnet info``). Trainable parameters are
declared per component in ``cfg.trainable`` (:func:`clvnet.models.trainable.set_trainable`).

Checkpoint folders hold ``config.yaml``, ``model.safetensors`` (every tensor that is not an unchanged copy
of a pretrained folder), ``processor_config.json`` (every input size), ``tokenizer/`` and, with LoRA, the peft
``adapter/``. Loading is strict: the key set
is derived from the config, and any missing, unexpected or mis-shaped key is named. Weights are never pickled.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from clvnet.config import load_config, save_yaml
from clvnet.data.views import ImageViews
from clvnet.models.cgformer import CGFormer, PlainPrompt
from clvnet.models.config import SPECIAL_TOKENS, CLVNetConfig
from clvnet.models.cues import BoxMark, LocationCues
from clvnet.models.grounding import ConvGrounding, GroundingEncoder, SamGrounding, SharedGrounding
from clvnet.models.mask_decoder import MaskDecoder
from clvnet.models.modeling import CLVNet
from clvnet.models.processor import CLVNetProcessor
from clvnet.models.reasoner import VPReasoner
from clvnet.models.region import RegionEncoder
from clvnet.models.special_rows import SpecialTokenEmbedding, SpecialTokenHead
from clvnet.models.sralign import SRAlign
from clvnet.models.tokenizer import SpecialIds, add_special_tokens, build_tiny_tokenizer
from clvnet.models.trainable import set_trainable
from clvnet.models.vision import Projector, VisionEncoder

log = logging.getLogger(__name__)
_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
WEIGHTS, CONFIG, TOKENIZER, ADAPTER = "model.safetensors", "config.yaml", "tokenizer", "adapter"
PROCESSOR = "processor_config.json"


def _sdpa(config: Any) -> Any:
    config._attn_implementation = "sdpa"
    return config


# ---------------------------------------------------------------------------------------------- parts
def build_tokenizer(cfg: CLVNetConfig, captions: Iterable[str] | None = None) -> Any:
    """The LLM's tokenizer (from its folder) or the tiny BPE tokenizer trained on ``captions``."""
    path = cfg.llm.tokenizer_path or cfg.llm.pretrained_path
    if path is not None:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(path, trust_remote_code=cfg.llm.trust_remote_code, local_files_only=True)
        add_special_tokens(tok)
        return tok
    if captions is None:
        log.warning("no training captions given: the tiny tokenizer is built from the query text only "
                    "(byte-level BPE still encodes any caption, just in more tokens)")
        captions = []
    return build_tiny_tokenizer(captions, cfg.llm.tokenizer_vocab_size)


def _build_vision(cfg: CLVNetConfig) -> VisionEncoder:
    from transformers import CLIPVisionConfig, CLIPVisionModel

    vc = cfg.vision
    if vc.pretrained_path:
        clip = CLIPVisionModel.from_pretrained(vc.pretrained_path, attn_implementation="sdpa")
    else:
        clip = CLIPVisionModel(_sdpa(CLIPVisionConfig(**vc.config)))
    return VisionEncoder(clip, select_layer=vc.select_layer, mean=vc.mean, std=vc.std)


def _build_llm(cfg: CLVNetConfig, tokenizer: Any) -> Any:
    """The causal LM with room for the special tokens.

    A fully trained LLM (``trainable.llm: full``, the tiny preset) is resized to the tokenizer. Otherwise the
    pretrained matrices stay as they are and the special tokens get their own trainable rows
    (:mod:`clvnet.models.special_rows`); on the meta device (no tokenizer) they take the ids after the vocabulary.
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    lc = cfg.llm
    dtype = _DTYPES[lc.torch_dtype] if lc.torch_dtype else None
    llm: Any
    if lc.pretrained_path:
        llm = AutoModelForCausalLM.from_pretrained(lc.pretrained_path, trust_remote_code=lc.trust_remote_code,
                                                   dtype=dtype, local_files_only=True)
    else:
        kwargs = dict(lc.config)
        model_type = kwargs.pop("model_type", "llama")
        if tokenizer is not None and cfg.trainable.llm == "full":
            kwargs["vocab_size"] = len(tokenizer)     # trained from scratch: exactly the tokenizer's vocabulary
        conf = AutoConfig.for_model(model_type, **kwargs)
        if tokenizer is not None:
            for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
                setattr(conf, name, getattr(tokenizer, name))
        llm = AutoModelForCausalLM.from_config(_sdpa(conf), trust_remote_code=lc.trust_remote_code, dtype=dtype)
    rows = int(llm.get_input_embeddings().weight.shape[0])
    if tokenizer is not None:
        special = [int(tokenizer.convert_tokens_to_ids(t)) for t in SPECIAL_TOKENS]
        vocab = len(tokenizer)
        ordinary = max((i for i in tokenizer.get_vocab().values() if i not in special), default=0)
        if ordinary >= rows:
            raise ValueError(f"the tokenizer has ids up to {ordinary} but the LLM's embedding has {rows} rows "
                             "(llm.config.vocab_size or the LLM folder); only the special tokens may lie beyond it")
    else:
        special, vocab = list(range(rows, rows + len(SPECIAL_TOKENS))), rows + len(SPECIAL_TOKENS)
    if cfg.trainable.llm == "full":
        if vocab != rows:
            llm.resize_token_embeddings(vocab, mean_resizing=False)
        return llm
    emb = SpecialTokenEmbedding(llm.get_input_embeddings(), special)
    tied = bool(getattr(llm.config, "tie_word_embeddings", False))
    llm.set_input_embeddings(emb)
    llm.set_output_embeddings(SpecialTokenHead(llm.get_output_embeddings(), special, emb.rows if tied else None))
    return llm


def _sam(kind: str, path: str | None, cache: dict[str, Any]) -> Any:
    """The pretrained ``Sam2Model`` / ``SamModel`` of ``path`` (loaded once per build), or None."""
    if path is None:
        return None
    if path not in cache:
        from transformers import Sam2Model, SamModel

        cache[path] = (Sam2Model if kind == "sam2" else SamModel).from_pretrained(path)
    return cache[path]


def _positional(width: int) -> nn.Module:
    from transformers import Sam2PromptEncoderConfig
    from transformers.models.sam2.modeling_sam2 import Sam2PositionalEmbedding

    return Sam2PositionalEmbedding(Sam2PromptEncoderConfig(hidden_size=width))


def _grounding_sam(cfg: CLVNetConfig, vision: VisionEncoder, width: int, cache: dict[str, Any]) -> GroundingEncoder:
    gc = cfg.grounding
    common: dict[str, Any] = {"image_size": gc.image_size, "mean": gc.mean, "std": gc.std}
    sam = _sam(gc.kind, gc.pretrained_path, cache)
    if sam is not None:
        native = int(sam.config.prompt_encoder_config.image_size)
        if native != gc.image_size:
            raise ValueError(f"grounding.image_size={gc.image_size} but the {gc.kind} model in {gc.pretrained_path} "
                             f"takes {native}-px images (its prompt_encoder_config.image_size); set {native}")
        mem = sam.no_memory_embedding if gc.kind == "sam2" else None
        return SamGrounding(sam.vision_encoder, kind=gc.kind, no_memory_embedding=mem,
                            positional=sam.shared_image_embedding, **common)
    if gc.kind == "sam2":
        from transformers import Sam2HieraDetConfig, Sam2VisionConfig, Sam2VisionModel

        vconf = _sdpa(Sam2VisionConfig(backbone_config=_sdpa(Sam2HieraDetConfig(**gc.backbone)), **gc.vision))
        return SamGrounding(Sam2VisionModel(vconf), kind="sam2", no_memory_embedding=nn.Parameter(
            torch.zeros(1, 1, width)), positional=_positional(width), **common)
    from transformers import SamVisionConfig, SamVisionModel

    return SamGrounding(SamVisionModel(_sdpa(SamVisionConfig(**gc.vision))), kind="sam",
                        positional=_positional(width), **common)


def _grounding_shared(cfg: CLVNetConfig, vision: VisionEncoder, width: int, cache: dict[str, Any]) -> GroundingEncoder:
    gc = cfg.grounding
    return SharedGrounding(vision_width=vision.width, channels=width, patch_size=vision.patch_size,
                           stem_channels=gc.stem_channels, high_res=cfg.mask_decoder.kind == "sam2",
                           positional=_positional(width), image_size=gc.image_size, mean=gc.mean, std=gc.std)


def _grounding_conv(cfg: CLVNetConfig, vision: VisionEncoder, width: int, cache: dict[str, Any]) -> GroundingEncoder:
    gc = cfg.grounding
    return ConvGrounding(channels=width, conv_channels=gc.conv_channels, high_res=cfg.mask_decoder.kind == "sam2",
                         positional=_positional(width),
                         image_size=gc.image_size, mean=gc.mean, std=gc.std)


GROUNDING_BUILDERS: dict[str, Callable[[CLVNetConfig, VisionEncoder, int, dict[str, Any]], GroundingEncoder]] = {
    "sam2": _grounding_sam, "sam": _grounding_sam, "shared": _grounding_shared, "conv": _grounding_conv}


def _build_mask_decoder(cfg: CLVNetConfig, prompt_dim: int, cache: dict[str, Any]) -> MaskDecoder:
    mc = cfg.mask_decoder
    sam = _sam(mc.kind, mc.pretrained_path, cache)
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


def _build_cues(cfg: CLVNetConfig, vision_width: int, llm_width: int, decoder_width: int) -> LocationCues:
    feed = None
    if cfg.grounding.feed_llm:
        feed = nn.Linear(decoder_width, vision_width)
        nn.init.zeros_(feed.weight)
        nn.init.zeros_(feed.bias)
    mark = cfg.region.box_mark if cfg.use_box_prompt else "none"
    return LocationCues(feed=feed, mark_llm=BoxMark(llm_width) if mark in ("llm", "both") else None,
                        mark_mask=BoxMark(decoder_width) if mark in ("mask", "both") else None)


# where each input size comes from, for messages (ImageViews field -> model config key)
VIEW_SOURCES = {"image_size": "model.vision.config.image_size", "grounding_size": "model.grounding.image_size",
                "mask_size": "model.mask_decoder.mask_size", "region_size": "model.region.crop_size",
                "min_region": "model.region.min_size", "region_resize": "model.region.resize"}


def input_views(cfg: CLVNetConfig) -> ImageViews:
    """Every input size of the model, from its config alone (E_v's size from its folder when pretrained)."""
    if cfg.vision.pretrained_path:
        from transformers import CLIPVisionConfig

        clip_cfg: Any = CLIPVisionConfig.from_pretrained(cfg.vision.pretrained_path)
        image_size = int(clip_cfg.image_size)
    else:
        image_size = int(cfg.vision.config["image_size"])
    rc = cfg.region
    return ImageViews(image_size=image_size, grounding_size=cfg.grounding.image_size,
                      mask_size=cfg.mask_decoder.mask_size or cfg.grounding.image_size, region_size=rc.crop_size,
                      min_region=rc.min_size, region_resize=rc.resize)


def n_image_tokens(cfg: CLVNetConfig, vision: VisionEncoder) -> int:
    """Image tokens per image in the prompt: E_v's grid pooled by ``vision.llm_pool``."""
    side, pool = vision.image_size // vision.patch_size, max(cfg.vision.llm_pool, 1)
    if side % pool:
        raise ValueError(f"vision grid {side} is not divisible by vision.llm_pool={cfg.vision.llm_pool}")
    return (side // pool) ** 2


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
    cache: dict[str, Any] = {}
    with torch.device("meta") if meta else contextlib.nullcontext():
        vision = _build_vision(cfg)
        llm = _build_llm(cfg, tokenizer)
        d = int(llm.get_input_embeddings().embedding_dim)
        ids = SpecialIds.from_tokenizer(tokenizer) if tokenizer is not None else SpecialIds(0, 1, 2, 3, 4, 5, 6, None)
        rc, lc = cfg.region, cfg.loss
        region = RegionEncoder(vision.width, mode=rc.mode, grid=rc.grid, num_detections=rc.num_detections,
                               sampling=rc.sampling, box_hidden=rc.box_embed_hidden)
        mask_decoder = _build_mask_decoder(cfg, d, cache)
        width = mask_decoder.width
        grounding = GROUNDING_BUILDERS[cfg.grounding.kind](cfg, vision, width, cache)
        views = input_views(cfg)
        processor = None if tokenizer is None else CLVNetProcessor(
            tokenizer, n_image_tokens=n_image_tokens(cfg, vision), n_region_tokens=region.num_tokens,
            prompt_template=cfg.llm.prompt_template, query_template=cfg.llm.query_template,
            query_template_no_box=cfg.llm.query_template_no_box, use_box_prompt=cfg.use_box_prompt,
            max_length=getattr(llm.config, "max_position_embeddings", None), views=views)
        model = CLVNet(
            cfg, tokenizer=tokenizer, processor=processor, vision=vision,
            projector=Projector(vision.width, d, cfg.projector.hidden_size), region=region,
            reasoner=VPReasoner(llm, ids),
            cgformer=CGFormer(d, cfg.cgformer.num_heads, cfg.cgformer.threshold) if cfg.cgformer.enabled
            else PlainPrompt(d),
            grounding=grounding, mask_decoder=mask_decoder,
            sralign=SRAlign(d, width, lc.align_dim, csc=lc.csc, rec=lc.rec, text_relation=not cfg.cgformer.enabled,
                            logit_scale_init=lc.logit_scale_init, logit_scale_max=lc.logit_scale_max,
                            denominator=lc.csc_denominator, similarity=lc.csc_similarity),
            cues=_build_cues(cfg, vision.width, d, width))
    set_trainable(model, cfg)
    return model


def _without_paths(cfg: CLVNetConfig) -> CLVNetConfig:
    cfg = copy.deepcopy(cfg)
    cfg.vision.pretrained_path = cfg.llm.pretrained_path = cfg.llm.tokenizer_path = None
    cfg.grounding.pretrained_path = cfg.mask_decoder.pretrained_path = None
    return cfg


# ---------------------------------------------------------------------------------------------- checkpoints
def _pretrained_prefixes(cfg: CLVNetConfig) -> tuple[str, ...]:
    """State-dict prefixes whose tensors come unchanged from a pretrained folder (unless they train)."""
    out = []
    if cfg.vision.pretrained_path:
        out.append("vision.clip.")
    if cfg.llm.pretrained_path:
        out.append("reasoner.llm.")
    if cfg.grounding.pretrained_path and cfg.grounding.kind in ("sam2", "sam"):
        out += ["grounding.encoder.", "grounding.positional.", "grounding.no_memory_embedding"]
    if cfg.mask_decoder.pretrained_path:
        out += ["mask_decoder.decoder.", "mask_decoder.no_mask_embed"]
    return tuple(out)


def checkpoint_keys(model: CLVNet) -> list[str]:
    """State-dict keys a checkpoint of ``model`` must contain: all but the unchanged copies of pretrained folders."""
    prefixes = _pretrained_prefixes(model.cfg)
    grads = {n for n, p in model.named_parameters() if p.requires_grad}
    return [k for k in model.state_dict() if not k.startswith(prefixes) or k in grads]


def save_pretrained(model: CLVNet, directory: str | Path) -> Path:
    """Write the checkpoint folder (config.yaml, model.safetensors, tokenizer/, adapter/) and return its path."""
    from safetensors.torch import save_file

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    save_yaml(model.cfg, out / CONFIG)
    sd = model.state_dict()
    tensors = {k: sd[k].detach().contiguous().cpu() for k in checkpoint_keys(model)}
    seen: set[int] = set()
    for k, v in tensors.items():             # safetensors refuses shared storage (tied weights): copy
        ptr = v.untyped_storage().data_ptr()
        if ptr in seen:
            tensors[k] = v.clone()
        seen.add(ptr)
    save_file(tensors, str(out / WEIGHTS), metadata={"format": "pt", "model": "clvnet", "name": model.cfg.name})
    if model.tokenizer is not None:
        model.tokenizer.save_pretrained(str(out / TOKENIZER))
    if model.processor is not None:
        (out / PROCESSOR).write_text(json.dumps(model.processor.to_dict(), indent=1) + "\n")
    if model.cfg.trainable.llm == "lora":
        model.reasoner.llm.save_pretrained(str(out / ADAPTER))
    return out


def from_pretrained(directory: str | Path, device: str | torch.device = "cpu", *,
                    trust_remote_code: bool = False) -> CLVNet:
    """Build the model from ``config.yaml`` and load ``model.safetensors`` strictly; returns it in eval mode.

    Code shipped with a checkpoint (a tokenizer's or an LLM's ``auto_map``) runs only when the caller passes
    ``trust_remote_code=True``; the checkpoint's own ``llm.trust_remote_code`` never grants it.

    Raises:
        FileNotFoundError: ``config.yaml``, ``model.safetensors`` or ``processor_config.json`` is missing.
        PermissionError: the checkpoint needs remote code and ``trust_remote_code`` is False.
        ValueError: the weights do not match the config (every bad key is named).
    """
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    d = Path(directory)
    for name in (CONFIG, WEIGHTS):
        if not (d / name).is_file():
            raise FileNotFoundError(f"checkpoint {d}: missing {name}")
    cfg = load_config(CLVNetConfig, d / CONFIG)
    if cfg.llm.trust_remote_code and not trust_remote_code:
        raise PermissionError(
            f"checkpoint {d} runs Python code from its model folders (config llm.trust_remote_code: true, "
            f"LLM {cfg.llm.pretrained_path!r}); pass --trust-remote-code (trust_remote_code=True) only if you "
            "trust where it came from")
    cfg = dataclasses.replace(cfg, llm=dataclasses.replace(cfg.llm, trust_remote_code=trust_remote_code))
    tok = None
    if (d / TOKENIZER).is_dir():
        try:
            tok = AutoTokenizer.from_pretrained(str(d / TOKENIZER), trust_remote_code=trust_remote_code,
                                                local_files_only=True)
        except ValueError as exc:
            if trust_remote_code or "trust_remote_code" not in str(exc):
                raise
            raise PermissionError(
                f"checkpoint {d}: its tokenizer ({d / TOKENIZER}) runs Python code from the checkpoint; pass "
                "--trust-remote-code (trust_remote_code=True) only if you trust where it came from") from exc
    model = build_model(cfg, tokenizer=tok)
    _check_processor(model, d)
    load_weights(model, load_file(str(d / WEIGHTS)), source=str(d / WEIGHTS))
    return model.to(device).eval()


def _check_processor(model: CLVNet, d: Path) -> None:
    """The saved ``processor_config.json`` must equal the processor the config builds (sizes, templates)."""
    path = d / PROCESSOR
    if model.processor is None or not path.is_file():
        raise FileNotFoundError(f"checkpoint {d}: missing {PROCESSOR}")
    saved, built = json.loads(path.read_text()), model.processor.to_dict()
    flat_saved, flat_built = _flatten(saved), _flatten(built)
    diffs = [f"{k}: saved {flat_saved.get(k)!r}, config builds {flat_built.get(k)!r}"
             for k in sorted(set(flat_saved) | set(flat_built)) if flat_saved.get(k) != flat_built.get(k)]
    if diffs:
        raise ValueError(f"checkpoint {d}: {PROCESSOR} does not match the model config: " + "; ".join(diffs))


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def load_weights(model: CLVNet, tensors: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Load ``tensors`` into ``model``; the key set must equal :func:`checkpoint_keys` exactly."""
    expected, got = set(checkpoint_keys(model)), set(tensors)
    missing, unexpected = sorted(expected - got), sorted(got - expected)
    sd = model.state_dict()
    shapes = sorted(k for k in expected & got if tuple(sd[k].shape) != tuple(tensors[k].shape))
    problems = []
    if missing:
        problems.append(f"missing keys ({len(missing)}): {', '.join(missing[:20])}")
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected[:20])}")
    if shapes:
        problems.append("shape mismatch: " + ", ".join(
            f"{k} {tuple(tensors[k].shape)} vs model {tuple(sd[k].shape)}" for k in shapes[:20]))
    if problems:
        raise ValueError(f"{source} does not match the model config: " + "; ".join(problems))
    model.load_state_dict(tensors, strict=False)
