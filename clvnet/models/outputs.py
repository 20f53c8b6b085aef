"""Typed outputs of the CLV-Net modules, with their shapes (B boxes or images, N objects, D LLM width).

They sit below every module that produces or consumes them, so the model's files import one way only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from clvnet.data.record import Phrase

LOSS_KEYS = ("caption", "mask_bce", "mask_dice", "csc", "rec", "total")


@dataclass
class GroundingFeatures:
    """Dense features of one batch of images for the mask decoder.

    Attributes:
        embedding: (B, C, h, w) image embedding.
        positional: (1, C, h, w) image-wide positional embedding.
        high_res: two maps (B, C, 4h, 4w) and (B, C, 2h, 2w) before SAM2's ``conv_s0``/``conv_s1``, or None.
        dense_prompt: (B, C, h, w) added to the decoder's "no mask" dense prompt (the box mark), or None.
    """

    embedding: torch.Tensor
    positional: torch.Tensor
    high_res: list[torch.Tensor] | None = None
    dense_prompt: torch.Tensor | None = None

    def select(self, index: torch.Tensor) -> GroundingFeatures:
        """Rows ``index`` of the batch (for several boxes on one image, or one row per object).

        ``index_select``, not ``x[index]``: its backward adds rows back with ``index_add_``, while advanced
        indexing's backward is an accumulating ``index_put_`` that was the slowest op of the training step on CPU.
        """
        hr = None if self.high_res is None else [h.index_select(0, index) for h in self.high_res]
        dp = None if self.dense_prompt is None else self.dense_prompt.index_select(0, index)
        return GroundingFeatures(self.embedding.index_select(0, index), self.positional, hr, dp)


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
        return ImageFeatures(self.image_tokens.index_select(0, index), self.grounding.select(index))


@dataclass
class CLVNetOutput:
    """Training forward output.

    Attributes:
        loss: total loss (eq. 13).
        losses: detached scalars keyed by :data:`LOSS_KEYS`.
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
