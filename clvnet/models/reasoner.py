"""VPReasoner: the LLM 𝓛 with image tokens and region tokens spliced into the prompt (eqs. 2-5).

The prompt text holds one ``<image>`` token repeated once per image token and one ``<BOX>`` token
repeated K times (the processor expands them); here their embeddings are replaced by the projected
image tokens f_x and region tokens f_r (eq. 3: f_p = Embed(f_t, f_r)). f_h is the last layer's
hidden state at each ``[SEG]`` position (the position of the [SEG] token itself).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from clvnet.models.tokenizer import SpecialIds


class VPReasoner(nn.Module):
    """Wraps any ``AutoModelForCausalLM`` (optionally peft-wrapped) with prompt splicing.

    Args:
        llm: the causal LM.
        ids: special-token ids of its tokenizer.
    """

    def __init__(self, llm: Any, ids: SpecialIds) -> None:
        super().__init__()
        self.llm: Any = llm
        self.ids = ids

    @property
    def hidden_size(self) -> int:
        """D, the LLM width."""
        return int(self.llm.get_input_embeddings().embedding_dim)

    def embed(self, input_ids: torch.Tensor, image_tokens: torch.Tensor | None,
              region_tokens: torch.Tensor | None) -> torch.Tensor:
        """Token embeddings with ``<image>`` / ``<BOX>`` placeholders replaced.

        Args:
            input_ids: (B, L) with ``n`` ``<image>`` and ``K`` ``<BOX>`` ids per row.
            image_tokens: (B, n, D) projected image tokens f_x (or None if the ids have none).
            region_tokens: (B, K, D) projected region tokens f_r (or None if the ids have none).

        Returns:
            (B, L, D) input embeddings.
        """
        emb = self.llm.get_input_embeddings()(input_ids)                                # (B, L, D)
        for name, tok_id, feats in (("image", self.ids.image, image_tokens), ("region", self.ids.box, region_tokens)):
            where = input_ids == tok_id                                                  # (B, L)
            n_slots = int(where.sum())
            n_feats = 0 if feats is None else feats.shape[0] * feats.shape[1]
            if n_slots != n_feats or (feats is not None and bool((where.sum(1) != feats.shape[1]).any())):
                raise ValueError(f"{name} features and {name} placeholder tokens do not match: "
                                 f"{n_slots} placeholders, {n_feats} features "
                                 f"({None if feats is None else tuple(feats.shape)})")
            if feats is not None and n_slots:
                emb = emb.masked_scatter(where[..., None], feats.to(emb.dtype).reshape(-1, emb.shape[-1]))
        return emb

    def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, past_key_values: Any = None, use_cache: bool = False,
                logits_to_keep: int = 0) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """Run the LLM.

        Args:
            logits_to_keep: compute the logits of the last this many positions only (0 = all), when the LLM
                supports it (every native ``transformers`` model does; otherwise all are returned).

        Returns:
            logits (B, L' <= L, V) of the last L' positions, last-layer hidden states (B, L, D), and the KV cache
            (or None).
        """
        kw: dict[str, Any] = {}
        if past_key_values is not None:
            kw[self._cache_kw()] = past_key_values
        if logits_to_keep and self._accepts("logits_to_keep"):
            kw["logits_to_keep"] = logits_to_keep
        out = self.llm(inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids,
                       use_cache=use_cache, output_hidden_states=True, **kw)
        past = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
        return out.logits, out.hidden_states[-1], past if use_cache else None

    def _accepts(self, name: str) -> bool:
        """Whether the (unwrapped) LLM's forward takes the keyword ``name`` (remote-code models may not)."""
        if not hasattr(self, "_params"):
            import inspect

            base = self.llm.get_base_model() if hasattr(self.llm, "get_base_model") else self.llm
            self._params = frozenset(inspect.signature(base.forward).parameters)
        return name in self._params

    def _cache_kw(self) -> str:
        """transformers 5.24 renamed ``past_key_values`` to ``cache``; remote-code models may not have."""
        return "cache" if self._accepts("cache") else "past_key_values"


def answer_logits_to_keep(labels: torch.Tensor) -> int:
    """How many last positions need logits for the caption loss: from the one before the first answer token on."""
    answer = (labels != -100).any(0).nonzero()
    return int(labels.shape[1] - max(int(answer[0]) - 1, 0)) if answer.numel() else 1


def caption_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token CE on answer tokens only (labels -100 elsewhere), eq. 5.

    ``logits`` may cover only the last L' positions (``logits_to_keep``); ``labels`` (B, L) are aligned to them.
    """
    labels = labels[:, labels.shape[1] - logits.shape[1]:]
    shift_logits = logits[:, :-1].reshape(-1, logits.shape[-1])
    shift_labels = labels[:, 1:].reshape(-1)
    if bool((shift_labels != -100).any()):
        return F.cross_entropy(shift_logits.float(), shift_labels, ignore_index=-100)
    return logits.sum() * 0.0


def gather_objects(hidden: torch.Tensor, input_ids: torch.Tensor, ids: SpecialIds, n_max: int,
                   expected: torch.Tensor | None = None, record_ids: list[str] | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Collect f_h at [SEG] positions and phrase embeddings (mean over tokens inside ``<p> … </p>``).

    Args:
        hidden: (B, L, D) last-layer hidden states.
        input_ids: (B, L).
        ids: special ids.
        n_max: object slots in the output (≥ the largest [SEG] count).
        expected: (B,) the number of ground-truth masks per sample, checked against the [SEG] count.
        record_ids: names for error messages.

    Returns:
        f_h (B, n_max, D), phrase means (B, n_max, D), obj_mask (B, n_max) bool.

    Raises:
        ValueError: naming the record when [SEG] tokens, phrase tags and masks disagree.
    """
    b, length, d = hidden.shape
    obj_mask = torch.zeros(b, n_max, dtype=torch.bool, device=hidden.device)
    seg_pos = torch.zeros(b, n_max, dtype=torch.long, device=hidden.device)
    weights = hidden.new_zeros(b, n_max, length)                                    # phrase-token averaging
    for i in range(b):
        name = record_ids[i] if record_ids else str(i)
        seg = (input_ids[i] == ids.seg).nonzero().flatten()
        opens = (input_ids[i] == ids.p_open).nonzero().flatten()
        closes = (input_ids[i] == ids.p_close).nonzero().flatten()
        n = int(seg.numel())
        if expected is not None and n != int(expected[i]):
            raise ValueError(f"record {name}: {n} [SEG] tokens in the target text but {int(expected[i])} masks")
        if n > n_max:
            raise ValueError(f"record {name}: {n} [SEG] tokens but only {n_max} object slots")
        if opens.numel() != n or closes.numel() != n or bool((opens >= closes).any()):
            raise ValueError(f"record {name}: {opens.numel()} <p>, {closes.numel()} </p> and {n} [SEG] tokens "
                             "do not pair up")
        seg_pos[i, :n] = seg
        obj_mask[i, :n] = True
        for j in range(n):
            s, e = int(opens[j]) + 1, int(closes[j])
            if e > s:
                weights[i, j, s:e] = 1.0 / (e - s)
            else:                                                                     # empty phrase: use <p>
                weights[i, j, s - 1] = 1.0
    f_h = torch.gather(hidden, 1, seg_pos[..., None].expand(b, n_max, d)) * obj_mask[..., None]
    phrases = weights @ hidden                                                        # (B, n_max, D)
    return f_h, phrases, obj_mask
