"""CLVNet: VPReasoner + CMDecoder (CGFormer + mask decoder) + SRAlign (paper §III, eq. 13).

A pure ``nn.Module``: every sub-module is passed in (built by :mod:`clvnet.models.build`), and it does
no file I/O. Decoding lives in :mod:`clvnet.models.generation`.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from clvnet.losses.mask import mask_losses
from clvnet.models.config import CLVNetConfig
from clvnet.models.cues import LocationCues
from clvnet.models.grounding import GroundingEncoder
from clvnet.models.mask_decoder import MaskDecoder
from clvnet.models.outputs import LOSS_KEYS, CLVNetOutput, GroundingFeatures, ImageFeatures
from clvnet.models.processor import CLVNetProcessor
from clvnet.models.reasoner import VPReasoner, answer_logits_to_keep, caption_loss, gather_objects
from clvnet.models.region import RegionEncoder
from clvnet.models.sralign import SRAlign
from clvnet.models.vision import Projector, VisionEncoder, grid_to_tokens


def _frozen_context(module: nn.Module, inputs: torch.Tensor | None) -> contextlib.AbstractContextManager[Any]:
    """``no_grad`` around a fully frozen module whose input needs no gradient (saves activations)."""
    if (inputs is not None and inputs.requires_grad) or any(p.requires_grad for p in module.parameters()):
        return contextlib.nullcontext()
    return torch.no_grad()


class CLVNet(nn.Module):
    """The whole model.

    Args:
        cfg: the model config (loss weights, box prompt on/off, token pooling, decoding defaults).
        tokenizer: the LLM's tokenizer (None on the meta device).
        processor: turns collated batches into token ids (None on the meta device).
        vision, projector, region, reasoner, cgformer, grounding, mask_decoder: one module per box of the
            paper's figure (``cgformer`` is :class:`~clvnet.models.cgformer.PlainPrompt` in the ablation).
        sralign: the SRAlign heads and losses.
        cues: the optional location cues (:class:`~clvnet.models.cues.LocationCues`; identity when off).
    """

    def __init__(self, cfg: CLVNetConfig, *, tokenizer: Any, processor: CLVNetProcessor | None,
                 vision: VisionEncoder, projector: Projector, region: RegionEncoder, reasoner: VPReasoner,
                 cgformer: nn.Module, grounding: GroundingEncoder, mask_decoder: MaskDecoder, sralign: SRAlign,
                 cues: LocationCues) -> None:
        super().__init__()
        self.cfg, self.tokenizer, self.processor = cfg, tokenizer, processor
        self.vision, self.projector, self.region, self.reasoner = vision, projector, region, reasoner
        self.cgformer, self.grounding, self.mask_decoder = cgformer, grounding, mask_decoder
        self.sralign, self.cues = sralign, cues

    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return next(self.parameters()).device

    @property
    def head_dtype(self) -> torch.dtype:
        """dtype of the CMDecoder / SRAlign heads (the LLM may run in bf16 while they stay fp32)."""
        return self.projector.fc1.weight.dtype

    # ------------------------------------------------------------------ encoders
    def encode_image(self, images: torch.Tensor, grounding_images: torch.Tensor | None = None) -> ImageFeatures:
        """Encode images once; reuse the features for every box and query.

        Args:
            images: (B, 3, S, S) global views in [0, 1] for E_v.
            grounding_images: (B, 3, G, G) grounding views in [0, 1] made from the original pixels at the
                grounding encoder's input size (``processor.views``); None resizes ``images`` instead.
        """
        with _frozen_context(self.vision, images):
            grid = self.vision(images)                                                # (B, Cv, h, w)
        vision_grid = grid if self.grounding.uses_vision_grid else None
        pixels = images if grounding_images is None else grounding_images
        with _frozen_context(self.grounding, vision_grid):
            grounding = self.grounding(pixels, vision_grid)
        cells = grid_to_tokens(grid, self.cfg.vision.llm_pool)                         # (B, n_img, Cv)
        cells = self.cues.image_cells(cells, grounding)
        return ImageFeatures(image_tokens=self.projector(cells), grounding=grounding)  # (B, n_img, D)

    def encode_region(self, regions: torch.Tensor, boxes: torch.Tensor, detections: torch.Tensor | None = None,
                      detections_valid: torch.Tensor | None = None, window: torch.Tensor | None = None,
                      grounding: GroundingFeatures | None = None) -> torch.Tensor:
        """Region tokens f_r (B, K, D) from box crops (B, 3, R, R) and boxes (B, 4) normalised xyxy.

        ``window`` (B, 4) is the image area each crop canvas spans (the dataset's ``region_window``);
        ``grounding`` is the image's grounding features (read by the location cues when on).
        """
        patch = self.vision.patch_size
        size = max(patch, regions.shape[-1] // patch * patch)
        with _frozen_context(self.vision, regions):
            grid = self.vision(regions, size=size)
        tokens = self.region(grid, boxes, detections, detections_valid, window)       # (B, K, Cv)
        if grounding is not None:
            tokens = self.cues.region_tokens(tokens, grounding, self.region.token_boxes(boxes, detections))
        return self.projector(tokens)

    def context_tokens(self, feats: ImageFeatures, regions: torch.Tensor | None, boxes: torch.Tensor | None,
                       detections: torch.Tensor | None = None, detections_valid: torch.Tensor | None = None,
                       window: torch.Tensor | None = None) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(region tokens for the prompt or None, tokens the CGFormer attends to).

        Without the box prompt (Table II "w/o Prompt") there are no region tokens and CGFormer attends
        to the image tokens f_x.
        """
        if not self.cfg.use_box_prompt:
            return None, feats.image_tokens
        if regions is None or boxes is None:
            raise ValueError("use_box_prompt is on: regions and boxes are required")
        f_r = self.encode_region(regions, boxes, detections, detections_valid, window, feats.grounding)
        return f_r, f_r

    def mark_box(self, feats: ImageFeatures, boxes: torch.Tensor | None) -> ImageFeatures:
        """The features with the box marked on them (``region.box_mark``; unchanged when off or box-less)."""
        return self.cues.mark(feats, boxes if self.cfg.use_box_prompt else None)

    def decode_masks(self, f_h: torch.Tensor, f_r: torch.Tensor, obj_mask: torch.Tensor,
                     grounding: GroundingFeatures, size: int
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """CMDecoder: CGFormer then the mask decoder; returns (mask logits (B, N, size, size), mask tokens, R_t).

        Only real objects (``obj_mask``) are decoded: each is one row of the decoder's batch, with its image's
        features (SAM's decoder treats every prompt independently, so this equals decoding the padded (B, N)
        grid, without the work for the padding). Padded slots get zero logits and zero tokens.
        """
        f_g, r_t, _ = self.cgformer(f_h, f_r, obj_mask)
        b, n = obj_mask.shape
        if n == 0:
            return f_g.new_zeros(b, 0, size, size), f_g.new_zeros(b, 0, self.mask_decoder.width), r_t
        rows = obj_mask.nonzero()                                                      # (Ntot, 2): image, slot
        keep = 1.0
        if not rows.numel():        # no object at all: decode one padded slot at weight 0 (DDP needs the graph)
            rows, keep = obj_mask.new_zeros(1, 2, dtype=torch.long), 0.0
        low, tokens = self.mask_decoder(f_g[rows[:, 0], rows[:, 1]][:, None], grounding, rows=rows[:, 0])
        if low.shape[-1] != size:                                                      # (Ntot, 1, h', w')
            low = F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
        masks = low.new_zeros(b, n, size, size)
        masks[rows[:, 0], rows[:, 1]] = low[:, 0] * keep
        out_tokens = tokens.new_zeros(b, n, tokens.shape[-1])
        out_tokens[rows[:, 0], rows[:, 1]] = tokens[:, 0] * keep
        return masks, out_tokens, r_t

    # ------------------------------------------------------------------ training
    def forward(self, inputs: dict[str, Any]) -> CLVNetOutput:
        """Compute every loss term of eq. 13 on a processed batch (see :class:`CLVNetProcessor`)."""
        dev = self.device
        images = inputs["image"].to(dev)
        masks, valid = inputs["masks"].to(dev), inputs["mask_valid"].to(dev)
        input_ids, attn, labels = inputs["input_ids"].to(dev), inputs["attention_mask"].to(dev), inputs["labels"].to(dev)
        rec_ids = [str(x) for x in inputs.get("id", range(images.shape[0]))]
        opt = {k: (None if inputs.get(k) is None else inputs[k].to(dev))
               for k in ("region", "box", "detections", "detections_valid", "region_window")}
        grounding_images = inputs.get("grounding_image")
        feats = self.encode_image(images, None if grounding_images is None else grounding_images.to(dev))
        f_r_prompt, f_r = self.context_tokens(feats, opt["region"], opt["box"], opt["detections"],
                                              opt["detections_valid"], opt["region_window"])
        feats = self.mark_box(feats, opt["box"])
        logits, hidden, _ = self.reasoner(self.reasoner.embed(input_ids, feats.image_tokens, f_r_prompt), attn,
                                          logits_to_keep=answer_logits_to_keep(labels))
        l_cap = caption_loss(logits, labels)
        f_h, phrase_h, obj_mask = gather_objects(hidden.to(self.head_dtype), input_ids, self.reasoner.ids,
                                                 masks.shape[1], valid.sum(1), rec_ids)
        if bool((obj_mask != valid).any()):
            raise ValueError(f"mask_valid must mark the first n objects of each record ({rec_ids})")
        mask_logits, tokens, r_t = self.decode_masks(f_h, f_r, obj_mask, feats.grounding, masks.shape[-1])
        l_bce, l_dice = mask_losses(mask_logits, masks, valid)
        l_csc, l_rec, r_t, r_v = self.sralign(tokens, phrase_h, f_h, r_t, valid, inputs.get("phrase_texts"))
        lc = self.cfg.loss
        total = (lc.caption_weight * l_cap + lc.w_bce * l_bce + lc.w_dice * l_dice
                 + lc.sralign_lambda * (l_csc + l_rec))
        terms = dict(zip(LOSS_KEYS, (l_cap, l_bce, l_dice, l_csc, l_rec, total)))
        return CLVNetOutput(loss=total, losses={k: v.detach() for k, v in terms.items()}, mask_logits=mask_logits,
                            relation_text=r_t, relation_visual=r_v)
