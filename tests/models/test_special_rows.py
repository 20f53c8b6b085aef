"""Special-token rows beside a frozen pretrained embedding and LM head (``trainable.llm_embeddings: new_rows``)."""

from __future__ import annotations

import torch
from torch import nn

from clvnet.models.special_rows import SpecialTokenEmbedding, SpecialTokenHead


def test_embedding_keeps_base_rows_and_uses_its_own_for_special_ids() -> None:
    torch.manual_seed(0)
    base = nn.Embedding(10, 4)
    emb = SpecialTokenEmbedding(base, [12, 10, 3])              # two new ids and one that exists (a padding row)
    assert emb.num_embeddings == 13 and emb.embedding_dim == 4
    assert torch.equal(emb.rows[2], base.weight[3])              # an existing row starts from the base row
    ids = torch.tensor([[0, 12, 5, 10, 3]])
    out = emb(ids)
    assert torch.equal(out[0, 0], base.weight[0]) and torch.equal(out[0, 2], base.weight[5])
    assert torch.equal(out[0, 1], emb.rows[0]) and torch.equal(out[0, 3], emb.rows[1])
    assert torch.equal(out[0, 4], emb.rows[2])
    base.weight.requires_grad_(False)
    out.sum().backward()
    assert emb.rows.grad is not None and float(emb.rows.grad.abs().sum()) > 0


def test_head_pads_the_vocabulary_and_sets_special_columns() -> None:
    torch.manual_seed(0)
    base = nn.Linear(4, 10, bias=False)
    head = SpecialTokenHead(base, [10, 11, 3])
    h = torch.randn(2, 7, 4)
    logits = head(h)
    assert logits.shape == (2, 7, 12)
    plain = base(h)
    keep = [i for i in range(10) if i != 3]
    assert torch.allclose(logits[..., keep], plain[..., keep])
    assert torch.allclose(logits[..., [10, 11, 3]], h @ head.rows.t())
    emb = SpecialTokenEmbedding(nn.Embedding(10, 4), [10, 11, 3])
    tied = SpecialTokenHead(base, [10, 11, 3], emb.rows)
    assert tied.rows is emb.rows                                  # tied input/output embeddings share the rows
