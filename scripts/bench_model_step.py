"""Time one training step of a model preset on CPU: forward / backward / optimizer split.

Usage::

    python scripts/bench_model_step.py --preset tiny --batch 8 --image-size 256 --threads 2 --steps 5

The batch is synthetic (random images with rectangles, two or three phrases per record) and shaped
like ``collate_gcg`` output; tokenisation time is reported separately (it runs in DataLoader workers).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def synthetic_batch(batch: int, size: int, region: int, mask: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    words = ["two red cars", "a small house", "a white boat"]
    targets, texts = [], []
    n_max = 3
    masks = torch.zeros(batch, n_max, mask, mask)
    valid = torch.zeros(batch, n_max, dtype=torch.bool)
    img = torch.rand(batch, 3, size, size, generator=g)
    for b in range(batch):
        n = 2 + b % 2
        parts = [f"<p> {words[j]} </p> [SEG]" for j in range(n)]
        targets.append("A residential area with a road. In the box, " + " next to ".join(parts)
                       + " are near the road on the left side of the image.")
        texts.append(words[:n])
        for j in range(n):
            y, x = 10 + 30 * j, 15 + 25 * j
            masks[b, j, y:y + 12, x:x + 12] = 1
            valid[b, j] = True
    return {"image": img, "region": torch.rand(batch, 3, region, region, generator=g),
            "box": torch.tensor([[0.2, 0.2, 0.7, 0.7]] * batch), "masks": masks, "mask_valid": valid,
            "target": targets, "caption": targets, "phrase_texts": texts, "id": [str(i) for i in range(batch)]}


def main() -> None:
    from clvnet.models import build_model, load_model_config

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--region-size", type=int, default=128)
    ap.add_argument("--mask-size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast for forward")
    ap.add_argument("overrides", nargs="*", help="dotted config overrides, e.g. llm.config.hidden_size=96")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = load_model_config(args.preset, args.overrides)
    batch = synthetic_batch(args.batch, args.image_size, args.region_size, args.mask_size)
    model = build_model(cfg, captions=batch["target"] * 20)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    t0 = time.perf_counter()
    inputs = model.processor(batch)
    t_proc = time.perf_counter() - t0
    # wall time, and process CPU time (all threads summed): on a shared machine the CPU time is the
    # honest measure of the work; wall time includes waiting for other processes.
    keys = ("forward", "backward", "optimizer", "step")
    wall: dict[str, list[float]] = {k: [] for k in keys}
    cpu: dict[str, list[float]] = {k: [] for k in keys}
    for i in range(args.steps + 1):
        w0, c0 = time.perf_counter(), time.process_time()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            out = model(inputs)
        w1, c1 = time.perf_counter(), time.process_time()
        out.loss.backward()
        w2, c2 = time.perf_counter(), time.process_time()
        opt.step()
        opt.zero_grad(set_to_none=True)
        w3, c3 = time.perf_counter(), time.process_time()
        if i == 0:
            continue  # warm-up
        for k, w, c in zip(keys, (w1 - w0, w2 - w1, w3 - w2, w3 - w0), (c1 - c0, c2 - c1, c3 - c2, c3 - c0)):
            wall[k].append(w * 1000)
            cpu[k].append(c * 1000)
    n_total = sum(p.numel() for p in model.parameters())
    print(f"preset={args.preset} batch={args.batch} image={args.image_size} threads={args.threads} "
          f"params={n_total / 1e6:.2f}M seq_len={inputs['input_ids'].shape[1]} processor={t_proc * 1000:.1f} ms")
    print(f"  {'':9s} {'wall median':>12s} {'wall min':>10s} {'CPU median':>11s}   (CPU = process time, all threads)")
    for k in keys:
        print(f"  {k:9s} {statistics.median(wall[k]):9.1f} ms {min(wall[k]):7.1f} ms {statistics.median(cpu[k]):8.1f} ms")

if __name__ == "__main__":
    main()
