"""Where a quickstart run loses its points: teacher-forced vs generated masks, caption loss by word, input swaps.

Usage: ``python scripts/diagnose_quickstart.py runs/quickstart [--samples 96] [--words 30]``

Reads the run's ``checkpoint/``, ``train_config.yaml`` and ``data/test/records.jsonl`` and prints:

1. test mask mIoU / AP50 with the ground-truth caption fed in (teacher forcing) and with the model's own
   generated caption, and how often some predicted mask hits each GT phrase (IoU >= 0.5), inside vs outside
   the box;
2. the teacher-forced caption loss per word (which words carry the loss);
3. the caption loss when the image tokens, or the region tokens (crop features + box embedding, and the
   box mark on the image tokens with ``region.box_mark``), are swapped between samples: how much the
   caption depends on each input.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from clvnet.config import load_config
from clvnet.data import rle
from clvnet.data.dataset import GCGDataset
from clvnet.engine.config import TrainConfig
from clvnet.engine.validation import Collator, validate
from clvnet.eval import evaluate_masks
from clvnet.models import CLVNet, from_pretrained
from clvnet.quickstart import predict_records


def mask_hits(gts: list[Any], preds: list[Any]) -> dict[str, tuple[int, float]]:
    """Per GT phrase, does any predicted mask reach IoU >= 0.5? Split by ``meta.in_box`` when present."""
    hits: dict[str, list[bool]] = defaultdict(list)
    for g, p in zip(gts, preds):
        pred = [rle.decode(ph.masks[0]).astype(bool) for ph in p.phrases]
        in_box = g.meta.get("in_box") or [None] * len(g.phrases)
        for ph, inside in zip(g.phrases, in_box):
            gt = np.zeros((g.height, g.width), bool)
            for m in ph.masks:
                gt |= rle.decode(m).astype(bool)
            best = max([float((gt & q).sum()) / max(float((gt | q).sum()), 1.0) for q in pred] or [0.0])
            key = "all" if inside is None else ("inside the box" if inside else "outside the box")
            hits[key].append(best >= 0.5)
    return {k: (len(v), float(np.mean(v))) for k, v in hits.items()}


@torch.no_grad()
def caption_losses(model: CLVNet, ds: GCGDataset, n: int, batch_size: int = 16
                   ) -> tuple[dict[str, tuple[float, int]], dict[str, float]]:
    """(loss per word: (total nats, count), mean caption loss with/without swapped inputs)."""
    collate = Collator(model.processor)
    tok = model.tokenizer
    per_word: dict[str, list[float]] = defaultdict(list)
    swaps = {"normal": 0.0, "image tokens swapped": 0.0, "region tokens swapped": 0.0, "both swapped": 0.0}
    batches = 0
    for start in range(0, min(n, len(ds)), batch_size):
        idx = list(range(start, min(start + batch_size, n, len(ds))))
        if len(idx) < 2:
            break
        _, inputs = collate([ds[i] for i in idx])
        feats = model.encode_image(inputs["image"], inputs["grounding_image"])
        f_r, _ = model.context_tokens(feats, inputs["region"], inputs["box"], None, None, inputs.get("region_window"))
        mark = model.mark_box(feats, inputs["box"]).image_tokens - feats.image_tokens   # region.box_mark (or 0)
        roll = torch.roll(torch.arange(len(idx)), 1)
        labels = inputs["labels"][:, 1:]
        for name in swaps:
            img = feats.image_tokens[roll] if name in ("image tokens swapped", "both swapped") else feats.image_tokens
            swap_box = name in ("region tokens swapped", "both swapped")
            reg = f_r[roll] if f_r is not None and swap_box else f_r
            img = img + (mark[roll] if swap_box else mark)
            logits, _, _ = model.reasoner(model.reasoner.embed(inputs["input_ids"], img, reg), inputs["attention_mask"])
            ce = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels.flatten(), ignore_index=-100,
                                 reduction="none").view(labels.shape)
            valid = labels != -100
            swaps[name] += float(ce[valid].mean())
            if name == "normal":
                for b, t in valid.nonzero().tolist():
                    word = tok.convert_ids_to_tokens(int(labels[b, t])).replace("Ġ", "").lower() or "␣"
                    per_word[word].append(float(ce[b, t]))
        batches += 1
    return ({w: (sum(v), len(v)) for w, v in per_word.items()}, {k: v / max(batches, 1) for k, v in swaps.items()})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="quickstart run folder (with checkpoint/ and data/test/)")
    ap.add_argument("--samples", type=int, default=96, help="test samples for the caption-loss analyses")
    ap.add_argument("--words", type=int, default=30, help="words to list, by total loss")
    args = ap.parse_args()
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    cfg = load_config(TrainConfig, args.run / "train_config.yaml", [])
    model = from_pretrained(args.run / "checkpoint", device="cpu").eval()
    test = args.run / "data" / "test" / "records.jsonl"
    ds = GCGDataset(test, cfg.data.dataset, train=False, views=model.processor.views)

    row, _ = validate(model, ds, Collator(model.processor), torch.device("cpu"), batch_size=16,
                      max_samples=len(ds), n_captions=0)
    gts, preds = predict_records(model, test, cfg)
    gen = evaluate_masks(gts, preds)
    print(f"test masks, teacher-forced caption: mIoU {row['miou']:.1f}  AP50 {row['ap50']:.1f}  (mask resolution)")
    print(f"test masks, generated caption:      mIoU {gen['mIoU']:.1f}  AP50 {gen['AP50']:.1f}  (native resolution)")
    for key, (count, frac) in mask_hits(gts, preds).items():
        print(f"  GT phrases {key}: {count}, hit by a predicted mask at IoU >= 0.5: {100 * frac:.1f}%")

    words, swaps = caption_losses(model, ds, args.samples)
    total = sum(v for v, _ in words.values())
    print(f"\ncaption loss by word ({sum(c for _, c in words.values())} tokens, {total:.0f} nats):")
    for w, (v, c) in sorted(words.items(), key=lambda kv: -kv[1][0])[:args.words]:
        print(f"  {w:>14s} {100 * v / total:5.1f}%  n={c:<4d} mean {v / c:.2f}")
    print("\nmean caption loss with inputs swapped between samples:")
    for k, v in swaps.items():
        print(f"  {k:<22s} {v:.3f}")


if __name__ == "__main__":
    main()
