"""CGFormer, the Context-Aware Graph Former of the CMDecoder (paper eqs. 6-9, design §3).

::

    f_o = φ_o(f_h + MHCA(q=f_h, k=f_r, v=f_r))          # (B, N, D)
    R_e = softmax_rows(φ_h(f_o) · φ_v(f_o)ᵀ / √D)         # (B, N, N), over valid objects
    f_e = φ_e((R_e + I) · f_o)
    A_o = 1[R_e > τ]                                      # no gradient; τ = 1/N_valid by default
    f_g = ψ(f_o + φ_g(A_o · f_e))

The paper prints ``f_e · A_o``; with N×D features the product that aggregates over neighbours is
``A_o · f_e`` (design §3). Padded objects (``obj_mask`` False) take no part: their rows and columns
of R_e and A_o are zero.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _mlp(dim: int, out: int | None = None) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, out or dim))


def relation_matrix(q: torch.Tensor, k: torch.Tensor, obj_mask: torch.Tensor | None) -> torch.Tensor:
    """Row-wise softmax of q·kᵀ/√D over valid objects (eq. 7); padded rows are all zero.

    Args:
        q, k: (B, N, D).
        obj_mask: (B, N) bool, True for real objects (None = all real).

    Returns:
        (B, N, N) row-stochastic over valid columns.
    """
    logits = q @ k.transpose(1, 2) / math.sqrt(q.shape[-1])                    # (B, N, N)
    if obj_mask is None:
        return logits.softmax(dim=-1)
    logits = logits.masked_fill(~obj_mask[:, None, :], float("-inf"))
    rel = torch.nan_to_num(logits.softmax(dim=-1), nan=0.0)                    # rows with no valid column
    return rel * obj_mask[:, :, None]


class RelationHead(nn.Module):
    """φ_h, φ_v and the row softmax of eq. 7 (used for R_v from the decoder's mask tokens)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.phi_h = nn.Linear(dim, dim)
        self.phi_v = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, obj_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, N, D) -> (B, N, N) relation matrix."""
        return relation_matrix(self.phi_h(x), self.phi_v(x), obj_mask)


class CGFormer(nn.Module):
    """Context-aware graph former.

    Args:
        dim: D, the width of f_h and f_r.
        num_heads: heads of the cross-attention.
        threshold: τ for A_o; None means 1/N_valid per sample.
    """

    def __init__(self, dim: int, num_heads: int, threshold: float | None = None) -> None:
        super().__init__()
        self.threshold = threshold
        self.mhca = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.phi_o = nn.Linear(dim, dim)
        self.relation = RelationHead(dim)
        self.phi_e = _mlp(dim)
        self.phi_g = _mlp(dim)
        self.psi = _mlp(dim)

    def forward(self, f_h: torch.Tensor, f_r: torch.Tensor, obj_mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run eqs. 6-9.

        Args:
            f_h: (B, N, D) [SEG] hidden states.
            f_r: (B, K, D) region tokens.
            obj_mask: (B, N) bool, True for real objects.

        Returns:
            f_g (B, N, D), r_e (B, N, N) and a_o (B, N, N) bool.
        """
        b, n, _ = f_h.shape
        if obj_mask is None:
            obj_mask = torch.ones(b, n, dtype=torch.bool, device=f_h.device)
        attn, _ = self.mhca(f_h, f_r, f_r, need_weights=False)
        f_o = self.phi_o(f_h + attn)                                                   # (B, N, D)  eq. 6
        r_e = self.relation(f_o, obj_mask)                                             # (B, N, N)  eq. 7
        eye = torch.eye(n, device=f_h.device, dtype=f_h.dtype)
        f_e = self.phi_e((r_e + eye) @ f_o)                                            # (B, N, D)  eq. 8
        with torch.no_grad():
            if self.threshold is None:
                n_valid = obj_mask.sum(dim=1).clamp(min=1).to(r_e.dtype)               # (B,)
                tau = (1.0 / n_valid)[:, None, None]
            else:
                tau = torch.full((b, 1, 1), float(self.threshold), dtype=r_e.dtype, device=r_e.device)
            a_o = (r_e > tau) & obj_mask[:, :, None] & obj_mask[:, None, :]            # (B, N, N)
        f_g = self.psi(f_o + self.phi_g(a_o.to(f_e.dtype) @ f_e))                      # (B, N, D)  eq. 9
        return f_g, r_e, a_o


class PlainPrompt(nn.Module):
    """The ``cgformer: false`` ablation (GLaMM/LISA path): f_g = MLP(f_h), no relation matrix."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.mlp = _mlp(dim)

    def forward(self, f_h: torch.Tensor, f_r: torch.Tensor, obj_mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, None, None]:
        """(B, N, D) -> (f_g, None, None)."""
        del f_r, obj_mask
        return self.mlp(f_h), None, None


__all__ = ["CGFormer", "PlainPrompt", "RelationHead", "relation_matrix"]
