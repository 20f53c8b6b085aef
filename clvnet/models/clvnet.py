"""CLVNet: VPReasoner + CMDecoder (CGFormer + mask decoder) + SRAlign, and its typed outputs.

Build it with :func:`clvnet.models.builder.build_model` (modules never load weights or freeze
themselves); load a checkpoint with :meth:`CLVNet.from_pretrained`.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from clvnet.data.record import Phrase
from clvnet.losses.alignment import relationship_consistency_loss, semantic_consistency_loss
from clvnet.losses.mask import mask_losses
from clvnet.models.config import CLVNetConfig
from clvnet.models.grounding import GroundingEncoder, GroundingFeatures
from clvnet.models.mask_decoder import MaskDecoder
from clvnet.models.processor import CLVNetProcessor
from clvnet.models.reasoner import VPReasoner, caption_loss, gather_objects
from clvnet.models.region import BoxMark, RegionEncoder, roi_align
from clvnet.models.vision import Projector, TokenMerge, VisionEncoder, grid_to_tokens

LOSS_KEYS = ("caption", "mask_bce", "mask_dice", "csc", "rec", "total")


def _frozen_context(module: nn.Module, inputs: torch.Tensor) -> contextlib.AbstractContextManager[Any]:
    """``no_grad`` around a fully frozen module whose input needs no gradient (saves activations)."""
    if inputs.requires_grad or any(p.requires_grad for p in module.parameters()):
        return contextlib.nullcontext()
    return torch.no_grad()


@dataclass
class ImageFeatures:
    """Per-image features, cacheable across boxes and queries.

    Attributes:
        image_tokens: (B, n_img, D) projected image tokens f_x.
        grounding: dense features for the mask decoder.
    """

    image_tokens: torch.Tensor
    grounding: GroundingFeatures

    def select(self, index: torch.Tensor) -> ImageFeatures:
        """Rows ``index`` (e.g. ``torch.zeros(n_boxes, dtype=long)`` repeats image 0)."""
        return ImageFeatures(self.image_tokens[index], self.grounding.select(index))


@dataclass
class CLVNetOutput:
    """Training forward output.

    Attributes:
        loss: total loss (eq. 13).
        losses: detached scalars {caption, mask_bce, mask_dice, csc, rec, total}.
        mask_logits: (B, Nmax, M, M) at the target mask size.
        relation_text, relation_visual: (B, Nmax, Nmax) R_t / R_v (None when not computed).
    """

    loss: torch.Tensor
    losses: dict[str, torch.Tensor]
    mask_logits: torch.Tensor
    relation_text: torch.Tensor | None = None
    relation_visual: torch.Tensor | None = None


@dataclass
class GenerationOutput:
    """One decoded box.

    Attributes:
        tagged: generated text with ``<p> … </p> [SEG]`` tags.
        caption: plain caption.
        phrases: grounded phrases with character spans in ``caption`` (no masks).
        mask_logits: (N, M, M) one mask per phrase, over the global view.
        scores: (N,) mask confidence (mean probability inside the predicted mask).
        token_ids: generated token ids (without EOS).
    """

    tagged: str
    caption: str
    phrases: list[Phrase]
    mask_logits: torch.Tensor
    scores: torch.Tensor
    token_ids: list[int] = field(default_factory=list)


class CLVNet(nn.Module):
    """The whole model; sub-modules are passed in by the builder (keyword-only)."""

    def __init__(self, cfg: CLVNetConfig, *, tokenizer: Any, vision: VisionEncoder, projector: Projector,
                 region: RegionEncoder, reasoner: VPReasoner, cgformer: nn.Module, grounding: GroundingEncoder,
                 mask_decoder: MaskDecoder, text_relation: nn.Module | None = None,
                 visual_relation: nn.Module | None = None, mask_proj: nn.Module | None = None,
                 phrase_proj: nn.Module | None = None, n_image_tokens: int = 0) -> None:
        super().__init__()
        self.cfg, self.tokenizer = cfg, tokenizer
        self.vision, self.projector, self.region, self.reasoner = vision, projector, region, reasoner
        self.cgformer, self.grounding, self.mask_decoder = cgformer, grounding, mask_decoder
        self.text_relation, self.visual_relation = text_relation, visual_relation
        self.mask_proj, self.phrase_proj = mask_proj, phrase_proj
        pool = max(cfg.vision.llm_pool, 1)
        concat = cfg.vision.llm_pool_mode == "concat" and pool > 1
        self.token_merge = TokenMerge(vision.width, pool) if concat else None
        self.grounding_proj: nn.Module | None = None
        if cfg.grounding.feed_llm:
            self.grounding_proj = nn.Linear(mask_decoder.width * (pool * pool if concat else 1), vision.width)
            nn.init.zeros_(self.grounding_proj.weight)
            nn.init.zeros_(self.grounding_proj.bias)
        mark = cfg.region.box_mark
        self.box_mark_llm = BoxMark(projector.fc2.out_features) if mark in ("llm", "both") else None
        self.box_mark_mask = BoxMark(mask_decoder.width) if mark in ("mask", "both") else None
        if mask_proj is not None:
            self.logit_scale = nn.Parameter(torch.tensor(float(cfg.loss.logit_scale_init)))
        self.n_image_tokens = n_image_tokens
        self.processor = CLVNetProcessor(
            tokenizer, n_image_tokens=n_image_tokens, n_region_tokens=region.num_tokens,
            prompt_template=cfg.llm.prompt_template, query_template=cfg.llm.query_template,
            query_template_no_box=cfg.llm.query_template_no_box, use_box_prompt=cfg.use_box_prompt,
            max_length=getattr(reasoner.llm.config, "max_position_embeddings", None)) if tokenizer is not None else None
        self.pretrained_prefixes: tuple[str, ...] = ()
        self.resized_embedding_keys: tuple[str, ...] = ()

    # ------------------------------------------------------------------ encoders
    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return next(self.parameters()).device

    @property
    def head_dtype(self) -> torch.dtype:
        """dtype of the CMDecoder / SRAlign heads (the LLM may run in bf16 while they stay fp32)."""
        return self.projector.fc1.weight.dtype

    def encode_image(self, images: torch.Tensor) -> ImageFeatures:
        """Encode global views (B, 3, S, S) in [0, 1] once; reuse for every box and query."""
        with _frozen_context(self.vision, images):
            grid, maps = self.vision(images, return_maps=True)                        # (B, Cv, h, w)
        shared = grid if self.grounding.kind == "shared" or getattr(self.grounding, "fuse_vision", False) else None
        with _frozen_context(self.grounding, shared if shared is not None else images):
            feats = self.grounding(images, shared, maps if self.grounding.uses_vision_maps else None)
        pool = self.cfg.vision.llm_pool
        if self.token_merge is not None:                                              # llm_pool_mode concat
            cells = self.token_merge(grid)                                            # (B, n_img, Cv)
        else:
            cells = grid_to_tokens(grid, pool)
        side = math.isqrt(cells.shape[1])
        if self.cfg.vision.position_embed:
            cells = cells + self.region.cell_embedding(side, cells)
        if self.grounding_proj is not None:                                           # grounding.feed_llm
            if self.token_merge is not None:
                pooled = grid_to_tokens(F.adaptive_avg_pool2d(feats.embedding, side * pool), pool, concat=True)
            else:
                pooled = F.adaptive_avg_pool2d(feats.embedding, side).flatten(2).transpose(1, 2)
            cells = cells + self.grounding_proj(pooled.to(cells.dtype))
        tokens = self.projector(cells)                                                # (B, n_img, D)
        return ImageFeatures(image_tokens=tokens, grounding=feats)

    def encode_region(self, regions: torch.Tensor, boxes: torch.Tensor, detections: torch.Tensor | None = None,
                      detections_valid: torch.Tensor | None = None, window: torch.Tensor | None = None,
                      grounding: GroundingFeatures | None = None) -> torch.Tensor:
        """Region tokens f_r (B, K, D) from box crops (B, 3, R, R) and boxes (B, 4) normalised xyxy.

        ``window`` (B, 4) is the image area the crop canvas spans (the dataset's ``region_window``).
        With ``grounding.feed_llm`` the global grounding embedding (``grounding``) is RoI-pooled over
        each token's box and added.
        """
        size = max(self.vision.patch_size, regions.shape[-1] // self.vision.patch_size * self.vision.patch_size)
        with _frozen_context(self.vision, regions):
            grid = self.vision(regions, size=size)
        tokens = self.region(grid, boxes, detections, detections_valid, window)       # (B, K, Cv)
        if self.grounding_proj is not None:
            if grounding is None:
                raise ValueError("grounding.feed_llm is on: encode_region needs the image's grounding features")
            token_boxes = self.region.token_boxes(boxes, detections)                  # (B, K, 4)
            boxes_g = token_boxes.to(grounding.embedding.dtype)
            if self.token_merge is not None:                                          # the image tokens' layout
                pool = self.cfg.vision.llm_pool
                pooled = roi_align(grounding.embedding, boxes_g, pool).transpose(2, 3).flatten(2)
            else:
                pooled = roi_align(grounding.embedding, boxes_g, 1)[:, :, 0]
            tokens = tokens + self.grounding_proj(pooled.to(tokens.dtype))
        return self.projector(tokens)

    def mark_box(self, feats: ImageFeatures, boxes: torch.Tensor | None) -> ImageFeatures:
        """The image features with the box marked on them (``region.box_mark``); unchanged when off.

        Unchanged too without a box or with ``use_box_prompt`` off. ``feats`` (one row per box) stays
        box-independent, so it can be cached across boxes.
        """
        if boxes is None or not self.cfg.use_box_prompt or (self.box_mark_llm is None and self.box_mark_mask is None):
            return feats
        tokens, grounding = feats.image_tokens, feats.grounding
        if self.box_mark_llm is not None:
            tokens = tokens + self.box_mark_llm(boxes, math.isqrt(tokens.shape[1])).to(tokens.dtype)
        if self.box_mark_mask is not None:
            emb = grounding.embedding
            b, _, h, w = emb.shape
            if h != w:
                raise ValueError(f"region.box_mark needs a square grounding embedding, got {h}x{w}")
            mark = self.box_mark_mask(boxes, h).transpose(1, 2).reshape(b, -1, h, w).to(emb.dtype)
            dense = mark if grounding.dense_prompt is None else grounding.dense_prompt + mark
            grounding = GroundingFeatures(emb, grounding.positional, grounding.high_res, dense)
        return ImageFeatures(tokens, grounding)

    def context_tokens(self, feats: ImageFeatures, regions: torch.Tensor | None, boxes: torch.Tensor | None,
                       detections: torch.Tensor | None = None, detections_valid: torch.Tensor | None = None,
                       window: torch.Tensor | None = None) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(region tokens for the prompt or None, tokens the CGFormer attends to)."""
        if not self.cfg.use_box_prompt:
            return None, feats.image_tokens
        if regions is None or boxes is None:
            raise ValueError("use_box_prompt is on: regions and boxes are required")
        f_r = self.encode_region(regions, boxes, detections, detections_valid, window, feats.grounding)
        return f_r, f_r

    def decode_masks(self, f_h: torch.Tensor, f_r: torch.Tensor, obj_mask: torch.Tensor, grounding: GroundingFeatures,
                     size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """CMDecoder: CGFormer then the mask decoder; returns (mask logits (B,N,size,size), tokens, R_t)."""
        f_g, r_t, _ = self.cgformer(f_h, f_r, obj_mask)
        low, tokens = self.mask_decoder(f_g, grounding)                                # (B, N, h', w')
        if low.shape[1] and low.shape[-1] != size:
            low = F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
        elif not low.shape[1]:
            low = low.new_zeros(low.shape[0], 0, size, size)
        return low, tokens, r_t

    # ------------------------------------------------------------------ training
    def forward(self, inputs: dict[str, Any]) -> CLVNetOutput:
        """Compute every loss term of eq. 13 on a processed batch (see :class:`CLVNetProcessor`)."""
        dev = self.device
        images = inputs["image"].to(dev)
        masks, valid = inputs["masks"].to(dev), inputs["mask_valid"].to(dev)
        input_ids, attn, labels = inputs["input_ids"].to(dev), inputs["attention_mask"].to(dev), inputs["labels"].to(dev)
        rec_ids = [str(x) for x in inputs.get("id", range(images.shape[0]))]
        feats = self.encode_image(images)
        opt = {k: (None if inputs.get(k) is None else inputs[k].to(dev))
               for k in ("region", "box", "detections", "detections_valid", "region_window")}
        f_r_prompt, f_r = self.context_tokens(feats, opt["region"], opt["box"], opt["detections"],
                                              opt["detections_valid"], opt["region_window"])
        feats = self.mark_box(feats, opt["box"])
        embeds = self.reasoner.embed(input_ids, feats.image_tokens, f_r_prompt)
        logits, hidden, _ = self.reasoner(embeds, attn)
        l_cap = caption_loss(logits, labels)
        f_h, phrase_h, obj_mask = gather_objects(hidden.to(self.head_dtype), input_ids, self.reasoner.ids,
                                                 masks.shape[1], valid.sum(1), rec_ids)
        if bool((obj_mask != valid).any()):
            raise ValueError(f"mask_valid must mark the first n objects of each record ({rec_ids})")
        mask_logits, tokens, r_t = self.decode_masks(f_h, f_r, obj_mask, feats.grounding, masks.shape[-1])
        l_bce, l_dice = mask_losses(mask_logits, masks, valid)
        zero = l_cap * 0.0
        l_csc, l_rec, r_v = zero, zero, None
        if self.mask_proj is not None and self.phrase_proj is not None:
            if bool(valid.any()):
                l_csc = self._csc(tokens, phrase_h, valid, inputs.get("phrase_texts"))
            else:  # keep the heads in the graph (DDP expects a gradient for every trainable parameter)
                heads = [*self.mask_proj.parameters(), *self.phrase_proj.parameters(), self.logit_scale]
                l_csc = sum((p.sum() * 0.0 for p in heads), zero)
        if self.visual_relation is not None:
            if r_t is None and self.text_relation is not None:
                r_t = self.text_relation(f_h, obj_mask)
            r_v = self.visual_relation(tokens, obj_mask)
            l_rec = self._rec(r_t, r_v, valid) if r_t is not None else zero
        lc = self.cfg.loss
        total = (lc.caption_weight * l_cap + lc.w_bce * l_bce + lc.w_dice * l_dice
                 + lc.sralign_lambda * (l_csc + l_rec))
        terms = dict(zip(LOSS_KEYS, (l_cap, l_bce, l_dice, l_csc, l_rec, total)))
        return CLVNetOutput(loss=total, losses={k: v.detach() for k, v in terms.items()}, mask_logits=mask_logits,
                            relation_text=r_t, relation_visual=r_v)

    def _csc(self, tokens: torch.Tensor, phrase_h: torch.Tensor, valid: torch.Tensor,
             phrase_texts: list[list[str]] | None) -> torch.Tensor:
        """L_csc over all valid objects of the batch; positives = same object or identical phrase text."""
        assert self.mask_proj is not None and self.phrase_proj is not None
        m = self.mask_proj(tokens[valid])                                              # (Ntot, A)
        s = self.phrase_proj(phrase_h[valid])                                          # (Ntot, A)
        n = m.shape[0]
        pos = torch.eye(n, dtype=torch.bool, device=m.device)
        if phrase_texts is not None:
            texts = [" ".join(t.lower().split()) for b, row in enumerate(phrase_texts)
                     for t in row[: int(valid[b].sum())]]
            if len(texts) == n:
                for i in range(n):
                    for j in range(n):
                        pos[i, j] |= texts[i] == texts[j]
        scale = self.logit_scale.clamp(max=self.cfg.loss.logit_scale_max)
        return semantic_consistency_loss(m, s, pos, scale, self.cfg.loss.csc_denominator)

    @staticmethod
    def _rec(r_t: torch.Tensor, r_v: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Mean L_rec over samples with >= 2 objects (0 if none)."""
        vals = []
        for b in range(valid.shape[0]):
            n = int(valid[b].sum())
            if n >= 2:
                vals.append(relationship_consistency_loss(r_t[b, :n, :n], r_v[b, :n, :n]))
        return torch.stack(vals).mean() if vals else (r_t.sum() + r_v.sum()) * 0.0

    # ------------------------------------------------------------------ inference / IO
    @torch.no_grad()
    def generate(self, images: torch.Tensor, regions: torch.Tensor | None = None, boxes: torch.Tensor | None = None,
                 query: str | list[str] | None = None, image_features: ImageFeatures | None = None,
                 max_new_tokens: int | None = None, streamer: Any = None, use_cache: bool | None = None,
                 mask_size: int | None = None, detections: torch.Tensor | None = None,
                 detections_valid: torch.Tensor | None = None, region_windows: torch.Tensor | None = None,
                 num_beams: int | None = None) -> list[GenerationOutput]:
        """Caption and segment each box; see :func:`clvnet.models.generation.generate`."""
        from clvnet.models.generation import generate

        return generate(self, images, regions, boxes, query=query, image_features=image_features,
                        max_new_tokens=max_new_tokens, streamer=streamer, use_cache=use_cache, mask_size=mask_size,
                        detections=detections, detections_valid=detections_valid, region_windows=region_windows,
                        num_beams=num_beams)

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write config.yaml, model.safetensors, tokenizer/ (and adapter/ with LoRA)."""
        from clvnet.models.checkpoint import save_checkpoint

        return save_checkpoint(self, directory)

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu", *,
                        trust_remote_code: bool = False) -> CLVNet:
        """Load a checkpoint folder strictly (missing or unexpected keys are named); eval mode."""
        from clvnet.models.checkpoint import load_checkpoint

        return load_checkpoint(directory, device=device, trust_remote_code=trust_remote_code)
