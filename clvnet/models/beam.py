"""Beam search over the KV cache, keeping each hypothesis's ``[SEG]`` hidden states (``generation.num_beams``).

Every box keeps ``k`` hypotheses. Each step scores all ``k × V`` continuations by their summed log
probability, keeps the best ``k``, reorders the KV cache to their parents (``Cache.reorder_cache``) and
feeds the chosen tokens. A hypothesis that emitted EOS is finished: it keeps its score and stays in the
beam (it only continues with padding, at no cost). When every hypothesis has finished or the token budget
is spent, each box takes the hypothesis with the best summed log probability divided by
``length ** length_penalty`` (EOS counted in the length), the normalisation ``transformers`` uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class BeamResult:
    """The best hypothesis of one box: its token ids (no EOS) and the ``[SEG]`` hidden states it fed."""

    token_ids: list[int]
    seg_states: list[torch.Tensor]


def beam_search(reasoner: Any, embed_tokens: Any, embeds: torch.Tensor, attn: torch.Tensor, pos: torch.Tensor,
                ids: Any, num_beams: int, budget: int, length_penalty: float = 1.0) -> list[BeamResult]:
    """Decode ``n`` prompts with ``num_beams`` hypotheses each.

    Args:
        reasoner: the :class:`~clvnet.models.reasoner.VPReasoner`.
        embed_tokens: the LLM's input embedding module.
        embeds, attn, pos: the left-padded prompts (n, L, D), their attention mask and positions (n, L).
        ids: the special token ids (``eos``, ``pad``, ``seg``).
        num_beams: hypotheses per box (>= 2).
        budget: the most new tokens.
        length_penalty: exponent of the length normalisation of the final choice.

    Returns:
        one :class:`BeamResult` per prompt.
    """
    if num_beams < 2:
        raise ValueError(f"beam_search needs num_beams >= 2, got {num_beams}")
    n, k = embeds.shape[0], num_beams
    rows = n * k
    dev = embeds.device
    embeds, attn, pos = (t.repeat_interleave(k, dim=0) for t in (embeds, attn, pos))
    logits, _, past = reasoner(embeds, attn, pos, use_cache=True, logits_to_keep=1)
    scores = torch.zeros(n, k, device=dev)
    scores[:, 1:] = float("-inf")                  # all beams start equal: keep one until the first step
    finished = torch.zeros(rows, dtype=torch.bool, device=dev)
    tokens: list[list[int]] = [[] for _ in range(rows)]
    segs: list[list[torch.Tensor]] = [[] for _ in range(rows)]
    step_logits = logits[:, -1].float()
    vocab = step_logits.shape[-1]
    done_row = torch.full((vocab,), float("-inf"), device=dev)   # a finished hypothesis only continues with pad
    done_row[ids.pad] = 0.0
    for step in range(budget):
        logp = torch.log_softmax(step_logits, dim=-1)                          # (rows, V)
        logp = torch.where(finished[:, None], done_row, logp)
        cand = (scores.view(rows, 1) + logp).view(n, k * vocab)
        top, flat = cand.topk(k, dim=-1)                                          # (n, k)
        parent = torch.div(flat, vocab, rounding_mode="floor") + torch.arange(n, device=dev)[:, None] * k
        token = flat % vocab
        src = parent.flatten()
        cur = token.flatten()
        scores = top
        parents = src.tolist()
        tokens = [list(tokens[r]) for r in parents]
        segs = [list(segs[r]) for r in parents]
        finished = finished[src]
        is_eos = (cur == ids.eos) & ~finished
        for r in (~finished & ~is_eos).nonzero().flatten().tolist():
            tokens[r].append(int(cur[r]))
        finished = finished | is_eos
        fed = torch.where(finished, torch.full_like(cur, ids.pad), cur)
        last = step == budget - 1
        if bool(finished.all()) or (last and not bool((fed == ids.seg).any())):
            break
        past.reorder_cache(src)
        attn = torch.cat([attn[src], torch.ones_like(attn[:, :1])], dim=1)
        pos = torch.cat([pos[src], pos[src][:, -1:] + 1], dim=1)
        logits, hidden, past = reasoner(embed_tokens(fed[:, None]), attn, pos[:, -1:], past_key_values=past,
                                        use_cache=True)
        for r in ((fed == ids.seg) & ~finished).nonzero().flatten().tolist():
            segs[r].append(hidden[r, -1])          # a [SEG] chosen at the last step is still fed, as in greedy
        if last:
            break
        step_logits = logits[:, -1].float()
    out = []
    flat_scores = scores.reshape(rows)
    for b in range(n):
        best, best_norm = b * k, float("-inf")
        for r in range(b * k, (b + 1) * k):
            length = max(len(tokens[r]) + int(finished[r]), 1)          # EOS counts, as in transformers
            norm = float(flat_scores[r]) / length ** length_penalty
            if norm > best_norm:
                best, best_norm = r, norm
        out.append(BeamResult(tokens[best], segs[best]))
    return out
