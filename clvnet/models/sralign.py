"""SRAlign (paper eqs. 10-12): the semantic (L_csc) and relationship (L_rec) consistency losses and their heads.

* L_csc, eq. 10: per sample, a symmetric multi-positive InfoNCE between mask embeddings m_i (the decoder's
  output mask tokens, projected) and phrase embeddings s_j (the mean LLM hidden state of the phrase's tokens
  between ``<p>`` and ``</p>``, projected), with logits cos(m_i, s_j)/τ (eq. 10 writes m_i·s_j/τ; see
  ``similarity``), summed over the sample's N objects and averaged over the batch. Positives are the same object, or the same normalised phrase text in the sample.
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


def _directional(z: torch.Tensor, pos: torch.Tensor, valid: torch.Tensor, denominator: str) -> torch.Tensor:
    """One direction of eq. 10 per sample: the sum over its objects of the mean −log softmax over their positives.

    Args:
        z: (B, N, N) logits, row = anchor, column = candidate.
        pos: (B, N, N) bool positives (only between valid objects).
        valid: (B, N) bool, real objects.
        denominator: ``all`` or ``negatives_only``.

    Returns:
        (B,) per-sample sums; an anchor without a positive (or, with ``negatives_only``, without a negative)
        contributes 0.
    """
    cols = valid[:, None, :].expand_as(pos)
    if denominator == "all":
        den = cols
    elif denominator == "negatives_only":
        den = cols & ~pos
    else:
        raise ValueError(f"csc denominator must be 'all' or 'negatives_only', got {denominator!r}")
    n_pos = pos.sum(-1)                                                               # (B, N)
    rows = valid & (n_pos > 0) & den.any(-1)
    den = torch.where(rows[..., None], den, torch.ones_like(den))                    # keep unused rows finite
    log_prob = z - torch.logsumexp(z.masked_fill(~den, float("-inf")), dim=-1, keepdim=True)
    per_row = -(log_prob.masked_fill(~pos, 0.0)).sum(-1) / n_pos.clamp(min=1)       # (B, N)
    return torch.where(rows, per_row, torch.zeros_like(per_row)).sum(-1)


def semantic_consistency_loss(mask_emb: torch.Tensor, phrase_emb: torch.Tensor, positives: torch.Tensor,
                              valid: torch.Tensor, logit_scale: torch.Tensor,
                              denominator: Literal["all", "negatives_only"] = "all",
                              similarity: Literal["dot", "cosine"] = "cosine") -> torch.Tensor:
    """L_csc of eq. 10: per sample, the symmetric multi-positive InfoNCE summed over its N objects.

    Logits are ``sim(m_i, s_j) / τ`` with ``τ = exp(-logit_scale)``: cosine similarity by default (CLIP's form; eq. 10
    writes the dot product ``m_i·s_j``, ``similarity="dot"``, which stalled at chance in our runs, design §7).

    Args:
        mask_emb: (B, N, A) mask embeddings m_i.
        phrase_emb: (B, N, A) phrase embeddings s_j (object j's phrase).
        positives: (B, N, N) bool, True where the ground truth links mask i and phrase j.
        valid: (B, N) bool, real objects.
        logit_scale: scalar tensor log(1/τ).
        denominator: ``all`` (the positives in the denominator too: standard InfoNCE, default) or
            ``negatives_only`` (eq. 10 as printed, ``j ≠ i``; unbounded below).
        similarity: ``dot`` (eq. 10) or ``cosine`` (the embeddings L2-normalised first, as CLIP does).

    Returns:
        The mean over samples with at least one object of (mask→phrase + phrase→mask) summed over the objects.
    """
    if positives.shape != (*mask_emb.shape[:2], phrase_emb.shape[1]) or valid.shape != mask_emb.shape[:2]:
        raise ValueError(f"positives {tuple(positives.shape)} must be (B, N, N) and valid {tuple(valid.shape)} (B, N) "
                         f"for mask embeddings {tuple(mask_emb.shape)}")
    pos = positives.to(torch.bool) & valid[:, :, None] & valid[:, None, :]
    if similarity == "cosine":
        mask_emb, phrase_emb = F.normalize(mask_emb, dim=-1), F.normalize(phrase_emb, dim=-1)
    elif similarity != "dot":
        raise ValueError(f"csc similarity must be 'dot' or 'cosine', got {similarity!r}")
    z = logit_scale.exp() * (mask_emb @ phrase_emb.transpose(1, 2))                 # (B, N, N)
    per_sample = _directional(z, pos, valid, denominator) + _directional(z.transpose(1, 2), pos.transpose(1, 2),
                                                                          valid, denominator)
    has = valid.any(-1)
    if not bool(has.any()):
        return z.sum() * 0.0
    return per_sample[has].mean()


def phrase_positives(phrase_texts: list[list[str]], valid: torch.Tensor) -> torch.Tensor:
    """(B, N, N) bool: objects i and j of a sample are the same object or have the same normalised phrase.

    Raises:
        ValueError: a sample's phrase list does not match its number of valid objects.
    """
    b, n = valid.shape
    codes = torch.full((b, n), -1, dtype=torch.long, device=valid.device)
    for i, row in enumerate(phrase_texts):
        k = int(valid[i].sum())
        if len(row) != k:
            raise ValueError(f"sample {i}: {len(row)} phrase texts but {k} objects (masks)")
        seen: dict[str, int] = {}
        codes[i, :k] = torch.tensor([seen.setdefault(" ".join(t.lower().split()), len(seen)) for t in row],
                                    dtype=torch.long)
    eye = torch.eye(n, dtype=torch.bool, device=valid.device)
    same = (codes[:, :, None] == codes[:, None, :]) | eye
    return same & valid[:, :, None] & valid[:, None, :]


class SRAlign(nn.Module):
    """The SRAlign heads and learnable temperature; ``forward`` computes L_csc and L_rec.

    Args:
        text_dim: D, the LLM width (phrase embeddings, f_h).
        visual_dim: C, the mask decoder width (mask tokens).
        align_dim: the shared space of m_i and s_j.
        csc, rec: which losses are on (a head exists only for a loss that is on).
        text_relation: build a relation head on f_h for R_t (when CGFormer, which gives R_e, is off).
        logit_scale_init, logit_scale_max: log(1/τ) at start and its clamp.
        denominator, similarity: see :func:`semantic_consistency_loss`.
    """

    def __init__(self, text_dim: int, visual_dim: int, align_dim: int, *, csc: bool = True, rec: bool = True,
                 text_relation: bool = False, logit_scale_init: float = 0.0, logit_scale_max: float = 4.6052,
                 denominator: Literal["all", "negatives_only"] = "all",
                 similarity: Literal["dot", "cosine"] = "cosine") -> None:
        super().__init__()
        self.csc, self.rec = csc, rec
        self.logit_scale_max, self.denominator, self.similarity = logit_scale_max, denominator, similarity
        if csc:
            self.mask_proj = nn.Linear(visual_dim, align_dim)
            self.phrase_proj = nn.Linear(text_dim, align_dim)
            # shape (1,), not a 0-d scalar: DeepSpeed cannot broadcast 0-d parameters
            self.logit_scale = nn.Parameter(torch.tensor([float(logit_scale_init)]))
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
        """L_csc of eq. 10; positives = same object or identical phrase text within the sample."""
        m = self.mask_proj(tokens)                                                     # (B, N, A)
        s = self.phrase_proj(phrase_h)                                                 # (B, N, A)
        if phrase_texts is not None:
            pos = phrase_positives(phrase_texts, valid)
        else:
            pos = torch.eye(valid.shape[1], dtype=torch.bool, device=valid.device).expand(valid.shape[0], -1, -1)
        scale = self.logit_scale.clamp(max=self.logit_scale_max)
        return semantic_consistency_loss(m, s, pos, valid, scale, self.denominator, self.similarity)

    @staticmethod
    def _rec(r_t: torch.Tensor, r_v: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Mean L_rec over samples with >= 2 objects (0 if none)."""
        vals = [relationship_consistency_loss(r_t[b, :n, :n], r_v[b, :n, :n])
                for b in range(valid.shape[0]) if (n := int(valid[b].sum())) >= 2]
        return torch.stack(vals).mean() if vals else (r_t.sum() + r_v.sum()) * 0.0
