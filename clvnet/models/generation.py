"""Decoding: caption and ground every box with the KV cache (greedy or beam search), then one CMDecoder pass.

:func:`generate` builds one left-padded prompt batch (:func:`prompt_batch`), decodes it greedily
(:func:`greedy`) or with :func:`clvnet.models.beam.beam_search`, and decodes the masks of every box's
``[SEG]`` states in one pass (:func:`finish`). The greedy loop is written out (no ``transformers.generate``)
so that the last-layer hidden state of every fed ``[SEG]`` token is collected from the cached steps
themselves. ``use_cache=False`` is a true no-cache loop that re-encodes the whole sequence at every step
(the GLaMM/LISA behaviour, kept for benchmarks).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from clvnet.data.record import from_tagged
from clvnet.models.beam import beam_search
from clvnet.models.modeling import CLVNet
from clvnet.models.outputs import GenerationOutput, ImageFeatures
from clvnet.models.tokenizer import decode

_TAG_RE = re.compile(r"<p>\s*(.*?)\s*</p>\s*\[SEG\]", re.DOTALL)
Streamer = Callable[[int, str], None]


@dataclass
class PromptBatch:
    """The prompts of ``n`` boxes, ready to decode.

    Attributes:
        embeds: (n, L, D) left-padded prompt embeddings (image and region tokens spliced in).
        attn: (n, L) attention mask; pos: (n, L) position ids.
        f_r: (n, K, D) the tokens CGFormer attends to (region tokens, or image tokens without the box prompt).
        feats: the (box-marked) image features, one row per box.
    """

    embeds: torch.Tensor
    attn: torch.Tensor
    pos: torch.Tensor
    f_r: torch.Tensor
    feats: ImageFeatures


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


def prompt_batch(model: CLVNet, images: torch.Tensor, regions: torch.Tensor | None, boxes: torch.Tensor | None, *,
                 query: str | list[str] | None = None, image_features: ImageFeatures | None = None,
                 grounding_images: torch.Tensor | None = None,
                 detections: torch.Tensor | None = None, detections_valid: torch.Tensor | None = None,
                 region_windows: torch.Tensor | None = None) -> PromptBatch:
    """Encode what is not cached yet and build the left-padded prompt batch (arguments as :func:`generate`)."""
    if model.processor is None:
        raise ValueError("the model has no tokenizer (built on the meta device?)")
    dev = model.device
    n = boxes.shape[0] if boxes is not None else (regions.shape[0] if regions is not None else images.shape[0])
    if image_features is None:
        image_features = model.encode_image(images.to(dev), None if grounding_images is None else grounding_images.to(dev))
    feats = _select(image_features, n)
    moved = {k: _rows(None if v is None else v.to(dev), n, k) for k, v in
             (("regions", regions), ("boxes", boxes), ("detections", detections),
              ("detections_valid", detections_valid), ("region_windows", region_windows))}
    f_r_prompt, f_r = model.context_tokens(feats, moved["regions"], moved["boxes"], moved["detections"],
                                           moved["detections_valid"], moved["region_windows"])
    feats = model.mark_box(feats, moved["boxes"])
    queries = query if isinstance(query, list) else [query] * n
    if len(queries) != n:
        raise ValueError(f"{len(queries)} queries for {n} boxes")
    prompts = [model.processor.prompt_ids(q) for q in queries]
    length = max(len(p) for p in prompts)
    input_ids = torch.full((n, length), model.processor.ids.pad, dtype=torch.long, device=dev)
    attn = torch.zeros((n, length), dtype=torch.long, device=dev)
    for i, p in enumerate(prompts):                                               # left padding
        input_ids[i, length - len(p):] = torch.tensor(p, device=dev)
        attn[i, length - len(p):] = 1
    embeds = model.reasoner.embed(input_ids, feats.image_tokens, f_r_prompt)        # (n, L, D)
    pos = (attn.cumsum(-1) - 1).clamp(min=0)
    return PromptBatch(embeds, attn, pos, f_r, feats)


def greedy(model: CLVNet, batch: PromptBatch, budget: int, *, use_cache: bool = True,
           streamer: Streamer | None = None) -> tuple[list[list[int]], list[list[torch.Tensor]]]:
    """Greedy decoding; returns every box's token ids (no EOS) and the hidden states of its fed ``[SEG]`` tokens.

    ``streamer(box_index, text_increment)`` is called after every step.
    """
    reasoner, ids = model.reasoner, model.reasoner.ids
    embed_tokens = reasoner.llm.get_input_embeddings()
    embeds, attn, pos = batch.embeds, batch.attn, batch.pos
    n = embeds.shape[0]
    logits, _, past = reasoner(embeds, attn, pos, use_cache=use_cache, logits_to_keep=1)
    gen: list[list[int]] = [[] for _ in range(n)]
    seg_states: list[list[torch.Tensor]] = [[] for _ in range(n)]
    emitted = [""] * n
    finished = torch.zeros(n, dtype=torch.bool, device=embeds.device)
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
        new_emb = embed_tokens(cur[:, None])                                          # (n, 1, D)
        if use_cache:
            logits, hidden, past = reasoner(new_emb, attn, pos[:, -1:], past_key_values=past, use_cache=True)
        else:
            embeds = torch.cat([embeds, new_emb], dim=1)
            logits, hidden, _ = reasoner(embeds, attn, pos, use_cache=False, logits_to_keep=1)
        for b in is_seg.nonzero().flatten().tolist():
            seg_states[b].append(hidden[b, -1])
        if last:
            break
        cur = logits[:, -1].argmax(-1)
    return gen, seg_states


@torch.no_grad()
def generate(model: CLVNet, images: torch.Tensor, regions: torch.Tensor | None = None,
             boxes: torch.Tensor | None = None, *, query: str | list[str] | None = None,
             image_features: ImageFeatures | None = None, grounding_images: torch.Tensor | None = None,
             max_new_tokens: int | None = None,
             streamer: Streamer | None = None, use_cache: bool | None = None, mask_size: int | None = None,
             detections: torch.Tensor | None = None, detections_valid: torch.Tensor | None = None,
             region_windows: torch.Tensor | None = None, num_beams: int | None = None) -> list[GenerationOutput]:
    """Caption and ground every box.

    Args:
        model: the CLVNet.
        images: (1 or B, 3, S, S) global views in [0, 1] (one image is shared by all boxes).
        regions: (B, 3, R, R) box crops in [0, 1] (None when ``use_box_prompt`` is off).
        boxes: (B, 4) normalised xyxy boxes.
        query: one query for all boxes, or one per box (must contain ``<BOX>``); default: the template.
        image_features: the cached ``model.encode_image(images, grounding_images)`` (1 or B rows).
        grounding_images: (1 or B, 3, G, G) grounding views (``processor.views``); None resizes ``images``.
        max_new_tokens: default ``cfg.generation.max_new_tokens``; decoding stops at EOS.
        streamer: called as ``streamer(box_index, text_increment)`` after every step (greedy).
        use_cache: default ``cfg.generation.use_cache``; False re-encodes the sequence every step.
        mask_size: side of the returned masks (default ``processor.views.mask_size``).
        detections, detections_valid: (B, n, 4) boxes inside each region and (B, n) validity, for
            ``region.mode: detections``.
        region_windows: (B, 4) image area each crop canvas spans (when crops were padded to squares).
        num_beams: default ``cfg.generation.num_beams``; above 1, beam search, which needs the KV cache;
            a streamer then gets each box's text in one piece at the end.

    Returns:
        One :class:`GenerationOutput` per box.
    """
    gc = model.cfg.generation
    cache = gc.use_cache if use_cache is None else use_cache
    budget = gc.max_new_tokens if max_new_tokens is None else max_new_tokens
    beams = gc.num_beams if num_beams is None else num_beams
    if beams < 1:
        raise ValueError(f"num_beams must be >= 1, got {beams}")
    if beams > 1 and not cache:
        raise ValueError("beam search (num_beams > 1) needs use_cache=True")
    batch = prompt_batch(model, images, regions, boxes, query=query, image_features=image_features,
                         grounding_images=grounding_images, detections=detections, detections_valid=detections_valid, region_windows=region_windows)
    if beams == 1:
        texts, segs = greedy(model, batch, budget, use_cache=cache, streamer=streamer)
    else:
        best = beam_search(model.reasoner, model.reasoner.llm.get_input_embeddings(), batch.embeds, batch.attn,
                           batch.pos, model.reasoner.ids, beams, budget, gc.length_penalty)
        texts, segs = [r.token_ids for r in best], [r.seg_states for r in best]
        if streamer is not None:       # the best hypothesis is known only at the end: one piece per box
            _stream(model.tokenizer, texts, [""] * len(texts), streamer, torch.ones(len(texts), dtype=torch.bool))
    assert model.processor is not None                   # prompt_batch checked it
    return finish(model, batch, texts, segs, mask_size or model.processor.views.mask_size)


def finish(model: CLVNet, batch: PromptBatch, gen: list[list[int]], seg_states: list[list[torch.Tensor]],
           mask_size: int) -> list[GenerationOutput]:
    """One CMDecoder pass over every box's ``[SEG]`` states, then the parsed outputs."""
    n, dev = len(gen), model.device
    n_max = max([len(s) for s in seg_states] + [0])
    f_h = torch.zeros(n, n_max, batch.embeds.shape[-1], dtype=model.head_dtype, device=dev)
    obj_mask = torch.zeros(n, n_max, dtype=torch.bool, device=dev)
    for b, states in enumerate(seg_states):
        if states:
            f_h[b, :len(states)] = torch.stack(states).to(f_h.dtype)
            obj_mask[b, :len(states)] = True
    mask_logits, _, _ = model.decode_masks(f_h, batch.f_r, obj_mask, batch.feats.grounding, mask_size)
    return [parse_output(model.tokenizer, gen[b], mask_logits[b, : len(seg_states[b])]) for b in range(n)]


def _stream(tokenizer: Any, gen: list[list[int]], emitted: list[str], streamer: Streamer,
            active: torch.Tensor) -> None:
    for b in active.nonzero().flatten().tolist():
        text = decode(tokenizer, gen[b])
        if text.startswith(emitted[b]) and len(text) > len(emitted[b]) and not text.endswith("\ufffd"):
            streamer(b, text[len(emitted[b]):])
            emitted[b] = text


def parse_output(tokenizer: Any, token_ids: list[int], masks: torch.Tensor) -> GenerationOutput:
    """Parse tagged text; keep one mask per well-formed ``<p> … </p> [SEG]`` phrase."""
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
    return GenerationOutput(tagged=tagged, caption=caption, phrases=phrases, mask_logits=sel, scores=scores,
                            token_ids=list(token_ids))
