"""SRAlign (paper eqs. 10-12): the semantic (L_csc) and relationship (L_rec) consistency losses and their heads.

* L_csc, eq. 10: a symmetric multi-positive InfoNCE between mask embeddings m_i (the decoder's output mask
  tokens, projected) and phrase embeddings s_j (the mean LLM hidden state of the phrase's tokens between
  ``<p>`` and ``</p>``, projected). Positives are the same object, or the same normalised phrase text.
* L_rec, eq. 11: the symmetric KL divergence between the textual relation matrix R_t (CGFormer's R_e, or a
  relation head on f_h when CGFormer is off) and the visual one R_v (eq. 7 applied to the mask tokens).
* Eq. 12: ``L_align = L_csc + L_rec``, weighted by λ in eq. 13 by the model.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from clvnet.models.cgformer import RelationHead

_EPS = 1e-8


def relationship_consistency_loss(r_text: torch.Tensor, r_visual: torch.Tensor) -> torch.Tensor:
    """L_rec of eq. 11 for one sample: 0.5·[KL(R_t‖R_v) + KL(R_v‖R_t)], summed over all entries.

    Args:
        r_text: (N, N) row-stochastic textual relation matrix.
        r_visual: (N, N) row-stochastic visual relation matrix.

    Returns:
        A scalar; 0 when N < 2. Probabilities are clamped to >= 1e-8 inside the logs.
    """
    if r_text.shape != r_visual.shape or r_text.ndim != 2 or r_text.shape[0] != r_text.shape[1]:
        raise ValueError(f"relation matrices must both be (N, N), got {tuple(r_text.shape)} and "
                         f"{tuple(r_visual.shape)}")
    if r_text.shape[0] < 2:
        return (r_text.sum() + r_visual.sum()) * 0.0
    lt = r_text.clamp(min=_EPS).log()
    lv = r_visual.clamp(min=_EPS).log()
    return 0.5 * ((r_text * (lt - lv)).sum() + (r_visual * (lv - lt)).sum())


def _directional(z: torch.Tensor, pos: torch.Tensor, denominator: str) -> torch.Tensor:
    """Mean over rows with >= 1 positive of the mean −log softmax over that row's positives."""
    if denominator == "all":
        log_prob = z - torch.logsumexp(z, dim=1, keepdim=True)                         # (R, C)
    elif denominator == "negatives_only":
        log_prob = z - torch.logsumexp(z.masked_fill(pos, float("-inf")), dim=1, keepdim=True)
    else:
        raise ValueError(f"csc denominator must be 'all' or 'negatives_only', got {denominator!r}")
    n_pos = pos.sum(dim=1)
    rows = n_pos > 0
    if not bool(rows.any()):
        return z.sum() * 0.0
    per_row = (-(log_prob.masked_fill(~pos, 0.0)).sum(dim=1) / n_pos.clamp(min=1))[rows]
    # negatives_only: a row without negatives has a -inf denominator; it contributes 0
    return torch.where(torch.isfinite(per_row), per_row, torch.zeros_like(per_row)).mean()


def semantic_consistency_loss(mask_emb: torch.Tensor, phrase_emb: torch.Tensor, positives: torch.Tensor,
                              logit_scale: torch.Tensor,
                              denominator: Literal["all", "negatives_only"] = "all") -> torch.Tensor:
    """L_csc of eq. 10: a symmetric multi-positive InfoNCE between mask and phrase embeddings.

    Args:
        mask_emb: (N, A) mask embeddings m_i.
        phrase_emb: (M, A) phrase embeddings s_j.
        positives: (N, M) bool, True where the ground truth links mask i and phrase j.
        logit_scale: scalar tensor log(1/τ); logits are ``logit_scale.exp() * cosine``.
        denominator: ``all`` (standard InfoNCE, default) or ``negatives_only`` (eq. 10 as printed).

    Returns:
        The sum of the mask→phrase and phrase→mask directions, each averaged over rows that have at least
        one positive.
    """
    if positives.shape != (mask_emb.shape[0], phrase_emb.shape[0]):
        raise ValueError(f"positives {tuple(positives.shape)} must be (N, M) = "
                         f"({mask_emb.shape[0]}, {phrase_emb.shape[0]})")
    z = logit_scale.exp() * (F.normalize(mask_emb, dim=-1) @ F.normalize(phrase_emb, dim=-1).t())   # (N, M)
    pos = positives.to(torch.bool)
    return _directional(z, pos, denominator) + _directional(z.t(), pos.t(), denominator)


def phrase_positives(phrase_texts: list[list[str]], valid: torch.Tensor) -> torch.Tensor:
    """(Ntot, Ntot) bool: objects i and j of the batch (valid ones, in order) have the same normalised phrase.

    Raises:
        ValueError: a sample's phrase list does not match its number of valid objects.
    """
    texts = []
    for b, row in enumerate(phrase_texts):
        n = int(valid[b].sum())
        if len(row) != n:
            raise ValueError(f"sample {b}: {len(row)} phrase texts but {n} objects (masks)")
        texts += [" ".join(t.lower().split()) for t in row]
    codes = {t: k for k, t in enumerate(dict.fromkeys(texts))}
    ids = torch.tensor([codes[t] for t in texts], device=valid.device, dtype=torch.long)
    return ids[:, None] == ids[None, :]


class SRAlign(nn.Module):
    """The SRAlign heads and learnable temperature; ``forward`` computes L_csc and L_rec.

    Args:
        text_dim: D, the LLM width (phrase embeddings, f_h).
        visual_dim: C, the mask decoder width (mask tokens).
        align_dim: the shared space of m_i and s_j.
        csc, rec: which losses are on (a head exists only for a loss that is on).
        text_relation: build a relation head on f_h for R_t (when CGFormer, which gives R_e, is off).
        logit_scale_init, logit_scale_max: log(1/τ) at start and its clamp (CLIP's).
        denominator: see :func:`semantic_consistency_loss`.
    """

    def __init__(self, text_dim: int, visual_dim: int, align_dim: int, *, csc: bool = True, rec: bool = True,
                 text_relation: bool = False, logit_scale_init: float = 2.6592, logit_scale_max: float = 4.6052,
                 denominator: Literal["all", "negatives_only"] = "all") -> None:
        super().__init__()
        self.csc, self.rec = csc, rec
        self.logit_scale_max, self.denominator = logit_scale_max, denominator
        if csc:
            self.mask_proj = nn.Linear(visual_dim, align_dim)
            self.phrase_proj = nn.Linear(text_dim, align_dim)
            self.logit_scale = nn.Parameter(torch.tensor(float(logit_scale_init)))
        if rec:
            self.visual_relation = RelationHead(visual_dim)
            if text_relation:
                self.text_relation = RelationHead(text_dim)

    def forward(self, mask_tokens: torch.Tensor, phrase_h: torch.Tensor, f_h: torch.Tensor,
                r_t: torch.Tensor | None, valid: torch.Tensor, phrase_texts: list[list[str]] | None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """L_csc and L_rec of a batch.

        Args:
            mask_tokens: (B, N, C) the decoder's output mask tokens.
            phrase_h: (B, N, D) mean hidden state of each phrase's tokens.
            f_h: (B, N, D) the [SEG] hidden states (for R_t when CGFormer is off).
            r_t: (B, N, N) CGFormer's R_e, or None.
            valid: (B, N) bool, real objects.
            phrase_texts: per sample, its phrases in order (for text positives), or None (object identity only).

        Returns:
            ``(l_csc, l_rec, r_t, r_v)``; a loss that is off is 0 (still attached to the graph).
        """
        zero = mask_tokens.sum() * 0.0 + phrase_h.sum() * 0.0
        l_csc, l_rec, r_v = zero, zero, None
        if self.csc:
            l_csc = self._csc(mask_tokens, phrase_h, valid, phrase_texts) if bool(valid.any()) else \
                sum((p.sum() * 0.0 for p in self.parameters()), zero)   # DDP: every trainable parameter in the graph
        if self.rec:
            if r_t is None and hasattr(self, "text_relation"):
                r_t = self.text_relation(f_h, valid)
            r_v = self.visual_relation(mask_tokens, valid)
            if r_t is not None:
                l_rec = self._rec(r_t, r_v, valid)
        return l_csc, l_rec, r_t, r_v

    def _csc(self, tokens: torch.Tensor, phrase_h: torch.Tensor, valid: torch.Tensor,
             phrase_texts: list[list[str]] | None) -> torch.Tensor:
        """L_csc over all valid objects of the batch; positives = same object or identical phrase text."""
        m = self.mask_proj(tokens[valid])                                              # (Ntot, A)
        s = self.phrase_proj(phrase_h[valid])                                          # (Ntot, A)
        pos = torch.eye(m.shape[0], dtype=torch.bool, device=m.device)
        if phrase_texts is not None:
            pos |= phrase_positives(phrase_texts, valid)
        scale = self.logit_scale.clamp(max=self.logit_scale_max)
        return semantic_consistency_loss(m, s, pos, scale, self.denominator)

    @staticmethod
    def _rec(r_t: torch.Tensor, r_v: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Mean L_rec over samples with >= 2 objects (0 if none)."""
        vals = [relationship_consistency_loss(r_t[b, :n, :n], r_v[b, :n, :n])
                for b in range(valid.shape[0]) if (n := int(valid[b].sum())) >= 2]
        return torch.stack(vals).mean() if vals else (r_t.sum() + r_v.sum()) * 0.0
