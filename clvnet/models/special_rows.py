"""Trainable rows for the special tokens a pretrained LLM lacks, beside its frozen embedding and head.

``<image> <BOX> <p> </p> [SEG]`` are new to a pretrained tokenizer. GLaMM and LISA resize and train the whole
embedding matrix and LM head for them (hundreds of millions of parameters at 7B). Here only their rows train
(``trainable.llm_embeddings: new_rows``): :class:`SpecialTokenEmbedding` returns the base embedding for every other
id, and :class:`SpecialTokenHead` computes the base logits and sets the special tokens' columns from its own rows.
The pretrained matrices stay untouched (and out of checkpoints); the vocabulary grows to cover the new ids.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _init_rows(base: torch.Tensor, token_ids: list[int]) -> torch.Tensor:
    """Start rows: the base row where the id already exists (padding rows), else normal noise at the base's scale."""
    rows = torch.randn(len(token_ids), base.shape[1], dtype=base.dtype, device=base.device)
    rows = rows * base.float().std().to(base.dtype)
    for k, i in enumerate(token_ids):
        if i < base.shape[0]:
            rows[k] = base[i]
    return rows


class SpecialTokenEmbedding(nn.Module):
    """An input embedding whose special-token rows are a separate trainable parameter.

    Args:
        base: the LLM's input embedding (``nn.Embedding``), frozen by the trainable policy.
        token_ids: ids of the special tokens (any order; they may lie beyond ``base``'s rows).
    """

    token_ids: torch.Tensor

    def __init__(self, base: nn.Embedding, token_ids: list[int]) -> None:
        super().__init__()
        self.base = base
        self.register_buffer("token_ids", torch.tensor(token_ids, dtype=torch.long), persistent=False)
        self.rows = nn.Parameter(_init_rows(base.weight.detach(), token_ids))
        self.embedding_dim = base.embedding_dim
        self.num_embeddings = max(base.num_embeddings, max(token_ids) + 1)

    @property
    def weight(self) -> torch.Tensor:
        """The base matrix (for code that reads the width or dtype); the special rows are in ``rows``."""
        return self.base.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """(…) ids -> (…, D) embeddings."""
        match = ids[..., None] == self.token_ids                                     # (…, n_special)
        special = match.any(-1)
        out = self.base(torch.where(special, torch.zeros_like(ids), ids))
        if bool(special.any()):
            out = torch.where(special[..., None], self.rows[match.to(torch.long).argmax(-1)].to(out.dtype), out)
        return out


class SpecialTokenHead(nn.Module):
    """An LM head whose special-token columns come from a separate trainable parameter.

    Args:
        base: the LLM's output projection (``nn.Linear`` without bias), frozen by the trainable policy.
        token_ids: ids of the special tokens.
        rows: share these rows (tied input and output embeddings) instead of new ones.
    """

    token_ids: torch.Tensor

    def __init__(self, base: nn.Linear, token_ids: list[int], rows: nn.Parameter | None = None) -> None:
        super().__init__()
        self.base = base
        self.register_buffer("token_ids", torch.tensor(token_ids, dtype=torch.long), persistent=False)
        self.rows = rows if rows is not None else nn.Parameter(_init_rows(base.weight.detach(), token_ids))
        self.out_features = max(base.out_features, max(token_ids) + 1)

    @property
    def weight(self) -> torch.Tensor:
        """The base matrix (for code that reads the width or dtype); the special rows are in ``rows``."""
        return self.base.weight

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """(…, D) -> (…, V) logits, V covering the special ids."""
        logits = self.base(hidden)
        if self.out_features > logits.shape[-1]:
            logits = F.pad(logits, (0, self.out_features - logits.shape[-1]), value=float("-inf"))
        special = hidden @ self.rows.to(hidden.dtype).t()                              # (…, n_special)
        return logits.index_copy(-1, self.token_ids, special.to(logits.dtype))
