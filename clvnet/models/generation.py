"""Greedy decoding with the KV cache, [SEG] hidden-state collection and one CMDecoder pass at the end.

Several boxes decode as one batch: prompts are left-padded and masked. The loop is written out
(no ``transformers.generate``) so that the last-layer hidden state of every fed ``[SEG]`` token is
collected from the cached steps themselves. ``use_cache=False`` is a true no-cache loop that
re-encodes the whole sequence at every step (the GLaMM/LISA behaviour, kept for benchmarks).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from clvnet.models.tokenizer import decode

if TYPE_CHECKING:
    from clvnet.models.clvnet import CLVNet, GenerationOutput, ImageFeatures

_TAG_RE = re.compile(r"<p>\s*(.*?)\s*</p>\s*\[SEG\]", re.DOTALL)
Streamer = Callable[[int, str], None]


def _rows(x: torch.Tensor | None, n: int, name: str) -> torch.Tensor | None:
    if x is None or x.shape[0] == n:
        return x
    if x.shape[0] == 1:
        return x.expand(n, *x.shape[1:])
    raise ValueError(f"{name} has {x.shape[0]} rows but there are {n} boxes")


def _select(feats: ImageFeatures, n: int) -> ImageFeatures:
    b = feats.image_tokens.shape[0]
    if b == n:
        return feats
    if b != 1:
        raise ValueError(f"image features have {b} rows but there are {n} boxes")
    return feats.select(torch.zeros(n, dtype=torch.long, device=feats.image_tokens.device))


def generate(model: CLVNet, images: torch.Tensor, regions: torch.Tensor | None, boxes: torch.Tensor | None, *,
             query: str | list[str] | None = None, image_features: ImageFeatures | None = None,
             max_new_tokens: int | None = None, streamer: Streamer | None = None, use_cache: bool | None = None,
             mask_size: int | None = None, detections: torch.Tensor | None = None,
             detections_valid: torch.Tensor | None = None, region_windows: torch.Tensor | None = None,
             num_beams: int | None = None) -> list[GenerationOutput]:
    """Caption and ground every box.

    Args:
        model: the CLVNet.
        images: (1 or B, 3, S, S) global views in [0, 1] (one image is shared by all boxes).
        regions: (B, 3, R, R) box crops in [0, 1] (None when ``use_box_prompt`` is off).
        boxes: (B, 4) normalised xyxy boxes.
        query: one query for all boxes, or one per box (must contain ``<BOX>``); default: the template.
        image_features: the cached ``model.encode_image(images)`` (1 or B rows).
        max_new_tokens: default ``cfg.generation.max_new_tokens``; decoding stops at EOS.
        streamer: called as ``streamer(box_index, text_increment)`` after every step (greedy).
        use_cache: default ``cfg.generation.use_cache``; False re-encodes the sequence every step.
        mask_size: side of the returned masks (default ``cfg.mask_decoder.mask_size``).
        detections, detections_valid: (B, n, 4) boxes inside each region and (B, n) validity, for
            ``region.mode: detections``.
        region_windows: (B, 4) image area each crop canvas spans (when crops were padded to squares).
        num_beams: default ``cfg.generation.num_beams``; above 1, beam search (:mod:`clvnet.models.beam`),
            which needs the KV cache; a streamer then gets each box's text in one piece at the end.

    Returns:
        One :class:`GenerationOutput` per box.
    """
    cfg = model.cfg
    proc = model.processor
    if proc is None:
        raise ValueError("the model has no tokenizer (built on the meta device?)")
    dev = model.device
    n = boxes.shape[0] if boxes is not None else (regions.shape[0] if regions is not None else images.shape[0])
    feats = image_features if image_features is not None else model.encode_image(images.to(dev))
    feats = _select(feats, n)
    regions = _rows(None if regions is None else regions.to(dev), n, "regions")
    boxes = _rows(None if boxes is None else boxes.to(dev), n, "boxes")
    f_r_prompt, f_r = model.context_tokens(
        feats, regions, boxes, None if detections is None else detections.to(dev),
        None if detections_valid is None else detections_valid.to(dev),
        _rows(None if region_windows is None else region_windows.to(dev), n, "region_windows"))
    feats = model.mark_box(feats, boxes)
    queries = query if isinstance(query, list) else [query] * n  # type: ignore[list-item]
    if len(queries) != n:
        raise ValueError(f"{len(queries)} queries for {n} boxes")
    prompts = [proc.prompt_ids(q) for q in queries]
    ids = proc.ids
    length = max(len(p) for p in prompts)
    input_ids = torch.full((n, length), ids.pad, dtype=torch.long, device=dev)
    attn = torch.zeros((n, length), dtype=torch.long, device=dev)
    for i, p in enumerate(prompts):                                   # left padding
        input_ids[i, length - len(p):] = torch.tensor(p, device=dev)
        attn[i, length - len(p):] = 1
    embeds = model.reasoner.embed(input_ids, feats.image_tokens, f_r_prompt)          # (B, L, D)
    pos = (attn.cumsum(-1) - 1).clamp(min=0)
    cache = cfg.generation.use_cache if use_cache is None else use_cache
    budget = cfg.generation.max_new_tokens if max_new_tokens is None else max_new_tokens
    reasoner, embed_tokens = model.reasoner, model.reasoner.llm.get_input_embeddings()

    beams = cfg.generation.num_beams if num_beams is None else num_beams
    if beams < 1:
        raise ValueError(f"num_beams must be >= 1, got {beams}")
    if beams > 1:
        if not cache:
            raise ValueError("beam search (num_beams > 1) needs use_cache=True")
        from clvnet.models.beam import beam_search

        best = beam_search(reasoner, embed_tokens, embeds, attn, pos, ids, beams, budget,
                           cfg.generation.length_penalty)
        texts = [r.token_ids for r in best]
        if streamer is not None:       # the best hypothesis is known only at the end: one piece per box
            _stream(model.tokenizer, texts, [""] * n, streamer, torch.ones(n, dtype=torch.bool))
        return _finish(model, texts, [r.seg_states for r in best], embeds.shape[-1], f_r, feats, mask_size)
    logits, _, past = reasoner(embeds, attn, pos, use_cache=cache)
    gen: list[list[int]] = [[] for _ in range(n)]
    seg_states: list[list[torch.Tensor]] = [[] for _ in range(n)]
    emitted = [""] * n
    finished = torch.zeros(n, dtype=torch.bool, device=dev)
    cur = logits[:, -1].argmax(-1)
    for step in range(budget):
        cur = torch.where(finished, torch.full_like(cur, ids.pad), cur)
        is_eos = (cur == ids.eos) & ~finished
        for b in (~finished & ~is_eos).nonzero().flatten().tolist():
            gen[b].append(int(cur[b]))
        if streamer is not None:
            _stream(model.tokenizer, gen, emitted, streamer, (~finished & ~is_eos))
        finished |= is_eos
        if bool(finished.all()):
            break
        is_seg = (cur == ids.seg) & ~finished
        last = step == budget - 1
        if last and not bool(is_seg.any()):
            break
        attn = torch.cat([attn, torch.ones_like(attn[:, :1])], dim=1)
        pos = torch.cat([pos, pos[:, -1:] + 1], dim=1)
        new_emb = embed_tokens(cur[:, None])                                          # (B, 1, D)
        if cache:
            logits, hidden, past = reasoner(new_emb, attn, pos[:, -1:], past_key_values=past, use_cache=True)
        else:
            embeds = torch.cat([embeds, new_emb], dim=1)
            logits, hidden, _ = reasoner(embeds, attn, pos, use_cache=False)
        for b in is_seg.nonzero().flatten().tolist():
            seg_states[b].append(hidden[b, -1])
        if last:
            break
        cur = logits[:, -1].argmax(-1)

    return _finish(model, gen, seg_states, embeds.shape[-1], f_r, feats, mask_size)


def _finish(model: CLVNet, gen: list[list[int]], seg_states: list[list[torch.Tensor]], d: int,
            f_r: torch.Tensor, feats: ImageFeatures, mask_size: int | None) -> list[GenerationOutput]:
    """One CMDecoder pass over every box's [SEG] states, then the parsed outputs."""
    from clvnet.models.clvnet import GenerationOutput

    n, dev = len(gen), model.device
    n_max = max([len(s) for s in seg_states] + [0])
    f_h = torch.zeros(n, n_max, d, dtype=model.head_dtype, device=dev)
    obj_mask = torch.zeros(n, n_max, dtype=torch.bool, device=dev)
    for b, states in enumerate(seg_states):
        if states:
            f_h[b, :len(states)] = torch.stack(states).to(f_h.dtype)
            obj_mask[b, :len(states)] = True
    size = mask_size or model.cfg.mask_decoder.mask_size
    mask_logits, _, _ = model.decode_masks(f_h, f_r, obj_mask, feats.grounding, size)   # (B, n_max, M, M)
    return [_output(GenerationOutput, model.tokenizer, gen[b], mask_logits[b, : len(seg_states[b])])
            for b in range(n)]


def _stream(tokenizer: Any, gen: list[list[int]], emitted: list[str], streamer: Streamer,
            active: torch.Tensor) -> None:
    for b in active.nonzero().flatten().tolist():
        text = decode(tokenizer, gen[b])
        if text.startswith(emitted[b]) and len(text) > len(emitted[b]) and not text.endswith("\ufffd"):
            streamer(b, text[len(emitted[b]):])
            emitted[b] = text


def _output(cls: Any, tokenizer: Any, token_ids: list[int], masks: torch.Tensor) -> GenerationOutput:
    """Parse tagged text; keep one mask per well-formed ``<p> … </p> [SEG]`` phrase."""
    from clvnet.data.record import from_tagged

    tagged = decode(tokenizer, token_ids)
    caption, phrases = from_tagged(tagged)
    keep = [tagged[: m.end()].count("[SEG]") - 1 for m in _TAG_RE.finditer(tagged)]
    keep = [k for k in keep if k < masks.shape[0]]
    if len(keep) != len(phrases):
        raise ValueError(f"internal: {len(phrases)} phrases but {len(keep)} [SEG] hidden states in {tagged!r}")
    sel = masks[keep] if keep else masks[:0]
    prob = sel.sigmoid()
    fg = (sel > 0).to(prob.dtype)
    scores = (prob * fg).flatten(1).sum(-1) / fg.flatten(1).sum(-1).clamp(min=1)
    return cls(tagged=tagged, caption=caption, phrases=phrases, mask_logits=sel, scores=scores,
               token_ids=list(token_ids))
