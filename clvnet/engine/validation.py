"""Batch plumbing and periodic validation: held-out loss, teacher-forced mask mIoU / AP50, sample captions.

Validation runs the model with ground-truth text (teacher forcing), so its mask metrics measure the
mask path alone and are cheap; the full GCG metrics on generated captions are ``clvnet eval``'s job.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from clvnet.data import rle
from clvnet.data.record import GCGRecord, Phrase


class Collator:
    """``collate_gcg`` then the model's processor, run inside DataLoader workers.

    Returns ``(batch, inputs)``: the collated batch (ground truth for validation) and the model inputs.
    """

    def __init__(self, processor: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self.processor = processor

    def __call__(self, samples: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
        from clvnet.data.dataset import collate_gcg

        batch = collate_gcg(samples)
        return batch, self.processor(batch)


def to_device(obj: Any, device: torch.device) -> Any:
    """Move every tensor inside nested dicts / lists / tuples to ``device``."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


def mask_records(batch: dict[str, Any], mask_logits: torch.Tensor) -> tuple[list[GCGRecord], list[GCGRecord]]:
    """GT and predicted records at mask resolution for one teacher-forced batch.

    Args:
        batch: a ``collate_gcg`` batch (``masks`` (B, N, M, M), ``mask_valid`` (B, N), ``id``, ``phrase_texts``).
        mask_logits: (B, N, M, M) logits for the same phrases.
    """
    gts: list[GCGRecord] = []
    preds: list[GCGRecord] = []
    masks = batch["masks"].cpu().numpy() > 0.5  # (B, N, M, M)
    valid = batch["mask_valid"].cpu().numpy()  # (B, N)
    logits = mask_logits.detach().float().cpu()
    probs = torch.sigmoid(logits).numpy()
    for b, rid in enumerate(batch["id"]):
        m = masks.shape[-1]
        texts = list(batch["phrase_texts"][b])
        idx = [i for i in range(valid.shape[1]) if valid[b, i]]
        caption = " ".join(texts[i] if i < len(texts) else f"object {i}" for i in idx)
        spans, pos = [], 0
        for i in idx:
            text = texts[i] if i < len(texts) else f"object {i}"
            spans.append((text, (pos, pos + len(text))))
            pos += len(text) + 1
        gt_ph = [Phrase(t, sp, [rle.encode(masks[b, i].astype(np.uint8))]) for (t, sp), i in zip(spans, idx)]
        pr_masks = [probs[b, i] > 0.5 for i in idx]
        pr_ph = [Phrase(t, sp, [rle.encode(pm.astype(np.uint8))]) for (t, sp), pm in zip(spans, pr_masks)]
        scores = [float(probs[b, i][pm].mean()) if pm.any() else 0.0 for i, pm in zip(idx, pr_masks)]
        gts.append(GCGRecord(image=str(rid), height=m, width=m, caption=caption, phrases=gt_ph, id=str(rid)))
        preds.append(GCGRecord(image=str(rid), height=m, width=m, caption=caption, phrases=pr_ph, id=str(rid),
                               meta={"scores": scores}))
    return gts, preds


@torch.no_grad()
def validate(model: Any, dataset: Dataset, collate: Collator, device: torch.device, *, batch_size: int,
             max_samples: int, n_captions: int, max_new_tokens: int | None = None) -> tuple[dict[str, float], list[tuple[str, str]]]:
    """Held-out loss terms, teacher-forced mask ``miou`` / ``ap50`` (x100) and a few decoded captions.

    Returns:
        ``(row, samples)``: the metrics row (``loss``, ``loss_<term>``, ``miou``, ``ap50``) and
        ``(ground-truth tagged text, generated tagged text)`` pairs.
    """
    from clvnet.eval import evaluate_masks
    from clvnet.models import generate

    was_training = model.training
    model.eval()
    n = len(dataset)  # type: ignore[arg-type]
    subset = Subset(dataset, list(range(min(n, max_samples) if max_samples > 0 else n)))
    loader = DataLoader(subset, batch_size=batch_size, shuffle=False, collate_fn=collate, num_workers=0)
    sums: dict[str, float] = {}
    count = 0
    gts: list[GCGRecord] = []
    preds: list[GCGRecord] = []
    samples: list[tuple[str, str]] = []
    for batch, inputs in loader:
        out = model(to_device(inputs, device))
        for k, v in out.losses.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach().float().item())
        count += 1
        g, p = mask_records(batch, out.mask_logits)
        gts += g
        preds += p
        if len(samples) < n_captions:
            k = min(n_captions - len(samples), len(batch["id"]))
            gens = generate(model, batch["image"][:k].to(device), batch["region"][:k].to(device),
                            batch["box"][:k].to(device), max_new_tokens=max_new_tokens,
                            grounding_images=batch["grounding_image"][:k].to(device),
                            region_windows=batch["region_window"][:k].to(device))
            samples += [(batch["target"][i], gens[i].tagged) for i in range(k)]
    metrics = evaluate_masks(gts, preds)
    row = {"loss": sums.get("total", 0.0) / max(count, 1)}
    row.update({f"loss_{k}": v / max(count, 1) for k, v in sums.items() if k != "total"})
    row.update({"miou": float(metrics["mIoU"] or 0.0), "ap50": float(metrics["AP50"] or 0.0)})
    model.train(was_training)
    return row, samples
