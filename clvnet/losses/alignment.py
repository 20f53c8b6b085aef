"""SRAlign losses (paper eqs. 10-12): cross-modal semantic consistency and relationship consistency."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

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
        log_den = torch.logsumexp(z, dim=1, keepdim=True)                               # (R, 1)
        log_prob = z - log_den                                                          # (R, C)
    elif denominator == "negatives_only":
        neg = z.masked_fill(pos, float("-inf"))
        log_den = torch.logsumexp(neg, dim=1, keepdim=True)                             # -inf when no negative
        log_prob = z - log_den
    else:
        raise ValueError(f"csc denominator must be 'all' or 'negatives_only', got {denominator!r}")
    n_pos = pos.sum(dim=1)
    rows = n_pos > 0
    if not bool(rows.any()):
        return z.sum() * 0.0
    per_row = -(log_prob.masked_fill(~pos, 0.0)).sum(dim=1) / n_pos.clamp(min=1)
    per_row = per_row[rows]
    if not bool(torch.isfinite(per_row).all()):  # negatives_only with a row that has no negatives
        per_row = torch.where(torch.isfinite(per_row), per_row, torch.zeros_like(per_row))
    return per_row.mean()


def semantic_consistency_loss(mask_emb: torch.Tensor, phrase_emb: torch.Tensor, positives: torch.Tensor,
                              logit_scale: torch.Tensor,
                              denominator: Literal["all", "negatives_only"] = "all") -> torch.Tensor:
    """L_csc of eq. 10: a symmetric multi-positive InfoNCE between mask and phrase embeddings.

    Args:
        mask_emb: (N, D) mask embeddings m_i.
        phrase_emb: (M, D) phrase embeddings s_j.
        positives: (N, M) bool, True where the ground truth links mask i and phrase j.
        logit_scale: scalar tensor log(1/τ); logits are ``logit_scale.exp() * cosine``.
        denominator: ``all`` (standard InfoNCE, default) or ``negatives_only`` (eq. 10 as printed).

    Returns:
        The sum of the mask→phrase and phrase→mask directions, each averaged over rows that have
        at least one positive. A row with no negatives contributes 0 under ``negatives_only``.
    """
    if positives.shape != (mask_emb.shape[0], phrase_emb.shape[0]):
        raise ValueError(f"positives {tuple(positives.shape)} must be (N, M) = "
                         f"({mask_emb.shape[0]}, {phrase_emb.shape[0]})")
    m = F.normalize(mask_emb, dim=-1)
    s = F.normalize(phrase_emb, dim=-1)
    z = logit_scale.exp() * (m @ s.t())                                                 # (N, M)
    pos = positives.to(torch.bool)
    return _directional(z, pos, denominator) + _directional(z.t(), pos.t(), denominator)
