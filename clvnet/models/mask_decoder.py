"""MaskDecoder: ``Sam2MaskDecoder`` (or ``SamMaskDecoder``) prompted by f_g (design §3).

Each object's f_g row is projected to the decoder width and becomes that object's single sparse
prompt token (objects ride SAM's "point batch" axis), with ``multimask_output=False`` and SAM's
"no mask" dense embedding (plus the box mark, when ``region.box_mark`` gives one).

The decoder's output mask token of object i is its visual representation m_i (for L_csc) and
f_h^v (for L_rec):

* ``Sam2MaskDecoder.forward`` returns it directly (its third output, ``sam_tokens_out``);
* ``SamMaskDecoder.forward`` does not, so a forward hook on its two-way transformer captures the
  transformer's output point embeddings and we take the first mask token (index 1, after the IoU
  token), which is the token that ``multimask_output=False`` uses.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from clvnet.models.outputs import GroundingFeatures


class MaskDecoder(nn.Module):
    """Prompt SAM/SAM2's mask decoder with one sparse token per object.

    Args:
        decoder: a ``Sam2MaskDecoder`` or ``SamMaskDecoder``.
        kind: ``sam2`` or ``sam``.
        prompt_dim: D, the width of f_g.
        no_mask_embed: (C,) dense "no mask" embedding (from SAM's prompt encoder when pretrained).
    """

    def __init__(self, decoder: Any, kind: str, prompt_dim: int, no_mask_embed: torch.Tensor | None = None
                 ) -> None:
        super().__init__()
        if kind not in ("sam2", "sam"):
            raise ValueError(f"mask decoder kind must be sam2 or sam, got {kind!r}")
        self.decoder: Any = decoder
        self.kind = kind
        self.width = int(decoder.config.hidden_size if hasattr(decoder, "config") else decoder.iou_token.weight.shape[1])
        self.prompt_proj = nn.Linear(prompt_dim, self.width)
        init = no_mask_embed if no_mask_embed is not None else torch.zeros(self.width)
        self.no_mask_embed = nn.Parameter(init.detach().clone().reshape(self.width))

    def unused_parameters(self) -> list[str]:
        """Parameters (relative names) that ``multimask_output=False`` with our outputs never touches."""
        names = []
        for n, _ in self.named_parameters():
            head = n.startswith(("decoder.iou_prediction_head.", "decoder.pred_obj_score_head."))
            extra = n.startswith("decoder.output_hypernetworks_mlps.") and not n.startswith(
                "decoder.output_hypernetworks_mlps.0.")
            if head or extra:
                names.append(n)
        return names

    def forward(self, f_g: torch.Tensor, feats: GroundingFeatures, rows: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode one mask per object.

        Args:
            f_g: (B, N, D) context-aware object features.
            feats: the grounding features of the same B images, or with ``rows`` of the images the rows come from.
            rows: (B,) the image of each row of ``f_g``: the features are selected per row here, after SAM2's
                per-image ``conv_s0``/``conv_s1`` (so those run once per image, not once per object).

        Returns:
            low-resolution mask logits (B, N, h', w') and mask tokens (B, N, C).
        """
        high_res = feats.high_res
        if self.kind == "sam2" and high_res is not None:
            high_res = [self.decoder.conv_s0(high_res[0]), self.decoder.conv_s1(high_res[1])]
        if rows is not None:
            feats = feats.select(rows)
            high_res = None if high_res is None else [h.index_select(0, rows) for h in high_res]
        b, n, _ = f_g.shape
        emb = feats.embedding
        h, w = emb.shape[-2:]
        if n == 0:
            side = (4 * h, 4 * w)
            return emb.new_zeros(b, 0, *side), emb.new_zeros(b, 0, self.width)
        sparse = self.prompt_proj(f_g)[:, :, None, :]                                 # (B, N, 1, C)
        dense = self.no_mask_embed.view(1, -1, 1, 1).expand(b, -1, h, w)
        if feats.dense_prompt is not None:
            dense = dense + feats.dense_prompt
        pos = feats.positional.expand(b, -1, -1, -1)
        if self.kind == "sam2":
            if high_res is None:
                raise ValueError("the SAM2 mask decoder needs high-resolution features")
            masks, _, tokens, _ = self.decoder(image_embeddings=emb, image_positional_embeddings=pos,
                                               sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                               multimask_output=False, high_resolution_features=high_res)
            return masks[:, :, 0], tokens[:, :, 0]
        captured: list[torch.Tensor] = []

        def hook(_m: nn.Module, _inp: object, out: tuple[torch.Tensor, torch.Tensor]) -> None:
            captured.append(out[0])

        handle = self.decoder.transformer.register_forward_hook(hook)
        try:
            masks, _ = self.decoder(image_embeddings=emb, image_positional_embeddings=pos,
                                    sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                    multimask_output=False)
        finally:
            handle.remove()
        return masks[:, :, 0], captured[0][:, :, 1]
