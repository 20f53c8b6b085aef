"""Beam search (``generation.num_beams``): exact on a search it can cover, and the same output contract as greedy."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from clvnet.models.generation import generate
from clvnet.models.modeling import CLVNet


def _prompt(model: CLVNet, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """The prompt embeddings of the first sample, built as ``generate`` builds them."""
    assert model.processor is not None
    image, region, box = batch["image"][:1], batch["region"][:1], batch["box"][:1]
    feats = model.mark_box(model.encode_image(image), box)
    f_r, _ = model.context_tokens(feats, region, box)
    ids = torch.tensor([model.processor.prompt_ids(None)])
    return model.reasoner.embed(ids, feats.image_tokens, f_r), torch.ones_like(ids)


@torch.no_grad()
def test_beam_as_wide_as_the_vocabulary_finds_the_best_two_tokens(tiny_model: CLVNet, batch: dict[str, Any]) -> None:
    model = tiny_model.eval()
    model.cfg.generation.length_penalty = 0.0                         # rank by the summed log probability
    embeds, attn = _prompt(model, batch)
    logits, _, _ = model.reasoner(embeds, attn)
    lp1 = torch.log_softmax(logits[0, -1].float(), -1)                 # (V,)
    vocab = lp1.shape[0]
    eos = model.processor.ids.eos
    firsts = torch.arange(vocab)
    emb2 = torch.cat([embeds.expand(vocab, -1, -1), model.reasoner.llm.get_input_embeddings()(firsts)[:, None]], 1)
    logits2, _, _ = model.reasoner(emb2, torch.ones(vocab, emb2.shape[1], dtype=torch.long))
    lp2 = torch.log_softmax(logits2[:, -1].float(), -1)                # (V, V)
    total = lp1[:, None] + lp2
    total[eos] = float("-inf")                                          # EOS first: the sequence ends there
    best = float(total.max())
    t, u = divmod(int(total.argmax()), vocab)
    want = [] if float(lp1[eos]) > best else ([t] if u == eos else [t, u])
    out = generate(model, batch["image"][:1], batch["region"][:1], batch["box"][:1], max_new_tokens=2,
                         num_beams=vocab)[0]
    assert out.token_ids == want


@torch.no_grad()
def test_beam_output_contract_and_errors(tiny_model: CLVNet, batch: dict[str, Any]) -> None:
    model = tiny_model.eval()
    image = batch["image"][:1]
    regions = torch.cat([batch["region"][:1], batch["region"][:1].flip(-1)])
    boxes = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.3, 0.3, 1.0, 1.0]])
    outs = generate(model, image, regions, boxes, max_new_tokens=12, num_beams=3)
    assert len(outs) == 2
    for o in outs:
        assert o.mask_logits.shape[0] == len(o.phrases) and o.scores.shape[0] == len(o.phrases)
        assert model.processor is not None and model.processor.ids.eos not in o.token_ids
    single = generate(model, image, regions[1:2], boxes[1:2], max_new_tokens=12, num_beams=3)[0]
    assert single.token_ids == outs[1].token_ids                        # boxes decode independently
    model.cfg.generation.num_beams = 3                                  # the config default is used
    assert generate(model, image, regions[1:2], boxes[1:2], max_new_tokens=12)[0].token_ids == single.token_ids
    pieces: list[tuple[int, str]] = []                                  # a streamer gets the final text at once
    streamed = generate(model, image, regions, boxes, max_new_tokens=12, streamer=lambda b, s: pieces.append((b, s)))
    assert [o.token_ids for o in streamed] == [o.token_ids for o in outs]
    assert sorted(b for b, _ in pieces) == [b for b, o in enumerate(outs) if o.tagged]
    assert all(text == streamed[b].tagged for b, text in pieces)
    with pytest.raises(ValueError, match="use_cache"):
        generate(model, image, regions[:1], boxes[:1], max_new_tokens=2, use_cache=False)
    with pytest.raises(ValueError, match="num_beams"):
        generate(model, image, regions[:1], boxes[:1], max_new_tokens=2, num_beams=0)
