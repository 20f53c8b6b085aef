"""Inference benchmarks, each reported as a ratio measured in one run.

1. Decoding with the KV cache vs the true no-cache loop (``generate(model, use_cache=False)`` re-encodes
   the whole sequence every step, as GLaMM/LISA do), forcing ``--new-tokens`` (default 512) by ignoring EOS,
   for the tiny preset and a mid-size LLM (hidden 768, 12 layers, ~600 prefix tokens).
2. Image-feature cache: a box on a new image (miss) vs a further box on the same image (hit).
3. Eight boxes decoded as one batch vs eight sequential calls.
4. Optionally (``--big scene.tif``): first vs second call on a large GeoTIFF (the preview cache).

Models are random (built from the config, nothing downloaded). Example::

    python scripts/bench_inference.py --sizes tiny,mid --new-tokens 512 --out bench_inference.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "geopixeld" / "example1.png"
CAPTIONS = ["The image shows a residential area with <p> houses </p> [SEG] and <p> pools </p> [SEG] . "
            "A <p> white car </p> [SEG] is parked near the road."] * 8


def build(size: str, prefix_tokens: int) -> Any:
    """A random CLVNet: the tiny preset, or the tiny preset with a mid-size LLM and ~prefix_tokens of prompt."""
    import torch

    from clvnet.models import build_model
    from clvnet.models.config import CLVNetConfig

    torch.manual_seed(0)
    cfg = CLVNetConfig()
    if size == "mid":
        cfg.llm.config = {"model_type": "llama", "hidden_size": 768, "intermediate_size": 2048,
                          "num_hidden_layers": 12, "num_attention_heads": 12, "num_key_value_heads": 12,
                          "max_position_embeddings": 4096, "vocab_size": 1024, "tie_word_embeddings": False}
        model = build_model(cfg, captions=CAPTIONS)
        other = len(model.processor.prompt_ids()) - model.processor.n_image_tokens
        # image tokens = (image_size / patch / pool)^2: choose the grid that brings the prefix nearest the target
        side = max(1, round((prefix_tokens - other) ** 0.5))
        patch = int(cfg.vision.config["patch_size"])
        cfg.vision.llm_pool = 1
        cfg.vision.config = {**cfg.vision.config, "image_size": side * patch}
    model = build_model(cfg, captions=CAPTIONS).eval()
    # never stop early: an id no step can produce stands in for EOS
    model.processor.ids = dataclasses.replace(model.processor.ids, eos=-1)
    return model


def _inputs(model: Any, n: int = 1) -> tuple[Any, Any, Any]:
    import torch

    g = torch.Generator().manual_seed(0)
    s = int(model.cfg.vision.config["image_size"])
    return (torch.rand(1, 3, s, s, generator=g), torch.rand(n, 3, 128, 128, generator=g),
            torch.tensor([[0.2, 0.2, 0.6, 0.7]] * n))


def _full_pass_s(model: Any, length: int) -> float:
    """Seconds of one no-cache LLM forward pass over ``length`` tokens (what each no-cache step costs)."""
    import torch

    d = model.reasoner.llm.get_input_embeddings().weight.shape[1]
    embeds = torch.randn(1, length, d) * 0.02
    attn = torch.ones(1, length, dtype=torch.long)
    pos = torch.arange(length)[None]
    t = time.perf_counter()
    model.reasoner(embeds, attn, pos, use_cache=False)
    return time.perf_counter() - t


def bench_kv_cache(model: Any, new_tokens: int, no_cache_steps: int = 0) -> dict[str, Any]:
    """Cached vs no-cache greedy decoding of exactly ``new_tokens`` tokens for one box.

    With ``no_cache_steps`` (0 < n < new_tokens) the no-cache loop runs only ``n`` steps and its total for
    ``new_tokens`` is *estimated* as the sum over steps of a quadratic fit of the full-pass time against the
    sequence length (passes timed at the prompt length, halfway and at the end); the result says so.
    """
    import torch

    from clvnet.models import generate

    images, regions, boxes = _inputs(model)
    prefix = len(model.processor.prompt_ids())
    with torch.inference_mode():
        generate(model, images, regions, boxes, max_new_tokens=4)  # warm-up
        out: dict[str, Any] = {"prefix_tokens": prefix, "new_tokens": new_tokens}
        t = time.perf_counter()
        cached = generate(model, images, regions, boxes, max_new_tokens=new_tokens, use_cache=True)[0]
        out["cache_s"] = round(time.perf_counter() - t, 3)
        out["cache_tokens"] = len(cached.token_ids)
        steps = new_tokens if not 0 < no_cache_steps < new_tokens else no_cache_steps
        t = time.perf_counter()
        plain = generate(model, images, regions, boxes, max_new_tokens=steps, use_cache=False)[0]
        dt = time.perf_counter() - t
        out["no_cache_tokens"] = len(plain.token_ids)
        out["same_tokens"] = sum(a == b for a, b in zip(cached.token_ids, plain.token_ids))
        if steps == new_tokens:
            out["no_cache_s"] = round(dt, 3)
            out["speedup"] = round(dt / out["cache_s"], 2)
        else:
            lengths = [prefix, prefix + new_tokens // 2, prefix + new_tokens - 1]
            times = [min(_full_pass_s(model, n) for _ in range(3)) for n in lengths]  # best of 3
            coef = np.polyfit(lengths, times, 2)
            est = float(np.polyval(coef, np.arange(prefix, prefix + new_tokens)).sum())
            out.update({"no_cache_measured_steps": steps, "no_cache_measured_s": round(dt, 3),
                        "full_pass_s": dict(zip(map(str, lengths), (round(x, 3) for x in times))),
                        "no_cache_s_estimated": round(est, 1), "speedup_estimated": round(est / out["cache_s"], 2)})
    return out


def bench_feature_cache(model: Any, image: Any, new_tokens: int, repeats: int = 5) -> dict[str, Any]:
    """Total predict time for a box on a new image (feature miss) vs a second box on it (hit).

    Best of ``repeats`` interleaved pairs (the minimum is the least disturbed by other processes).
    """
    from clvnet.inference.predictor import Predictor

    pred = Predictor(model, device="cpu", max_new_tokens=new_tokens)
    pred.predict(image, [[10, 10, 200, 200]])  # warm-up
    miss, hit, enc_miss = [], [], []
    for r in range(repeats):
        pred.features.clear()
        a = pred.predict(image, [[10 + r, 10, 300, 300]])[0]
        b = pred.predict(image, [[300, 300 + r, 600, 600]])[0]
        assert a.timings["cache_hit"] == 0.0 and b.timings["cache_hit"] == 1.0
        miss.append(a.timings["total"])
        hit.append(b.timings["total"])
        enc_miss.append(a.timings["encode"])
    m, h = min(miss), min(hit)
    return {"new_tokens": new_tokens, "repeats": repeats, "miss_s": round(m, 4), "hit_s": round(h, 4),
            "miss_median_s": round(statistics.median(miss), 4), "hit_median_s": round(statistics.median(hit), 4),
            "encode_s": round(min(enc_miss), 4), "speedup": round(m / h, 2)}


def bench_batch(model: Any, image: Any, new_tokens: int, n_boxes: int = 8, repeats: int = 2) -> dict[str, Any]:
    """``n_boxes`` boxes in one predict call vs one call per box (features cached in both); best of ``repeats``."""
    from clvnet.inference.predictor import Predictor

    pred = Predictor(model, device="cpu", max_new_tokens=new_tokens, batch_size=n_boxes)
    boxes = [[20 + 60 * k, 30 + 40 * k, 260 + 60 * k, 300 + 40 * k] for k in range(n_boxes)]
    pred.predict(image, boxes[:1])  # warm-up, fills the cache
    t_batch, t_seq, same = [], [], 0
    for _ in range(repeats):
        t = time.perf_counter()
        batched = pred.predict(image, boxes)
        t_batch.append(time.perf_counter() - t)
        t = time.perf_counter()
        seq = [pred.predict(image, [b])[0] for b in boxes]
        t_seq.append(time.perf_counter() - t)
        same = sum(a.tagged == b.tagged for a, b in zip(batched, seq))
    return {"boxes": n_boxes, "new_tokens": new_tokens, "repeats": repeats, "batched_s": round(min(t_batch), 3),
            "sequential_s": round(min(t_seq), 3), "same_text": same, "speedup": round(min(t_seq) / min(t_batch), 2)}


def bench_big(model: Any, path: Path, new_tokens: int) -> dict[str, Any]:
    """First vs second call on a large GeoTIFF: the preview (decimated whole-scene read) is cached."""
    from clvnet.inference.predictor import Predictor

    pred = Predictor(model, device="cpu", max_new_tokens=new_tokens)
    with pred.open(path) as raster:
        w, h = raster.width, raster.height
    side = min(1024, w // 4, h // 4)        # a 1024-px box on a large scene: at 45% and at 20% of its side
    a = pred.predict(path, [[0.45 * w, 0.45 * h, 0.45 * w + side, 0.45 * h + side]])[0]
    b = pred.predict(path, [[0.2 * w, 0.2 * h, 0.2 * w + side, 0.2 * h + side]])[0]
    return {"first": {k: round(v, 3) for k, v in a.timings.items()},
            "second": {k: round(v, 3) for k, v in b.timings.items()},
            "speedup": round(a.timings["total"] / b.timings["total"], 2)}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="tiny,mid")
    p.add_argument("--new-tokens", type=int, default=512, help="forced decode length for the KV-cache benchmark")
    p.add_argument("--prefix-tokens", type=int, default=600, help="prompt length of the mid-size model")
    p.add_argument("--no-cache-steps", default="",
                   help="per size, e.g. mid=16: run only that many no-cache steps and estimate the rest")
    p.add_argument("--predict-tokens", type=int, default=32, help="decode length in the cache/batch benchmarks")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    p.add_argument("--skip", default="", help="comma list of benchmarks to skip: kv,features,batch")
    p.add_argument("--big", type=Path, help="a large GeoTIFF (scripts/make_big_geotiff.py) for the preview cache")
    p.add_argument("--out", type=Path, help="write the results as JSON")
    args = p.parse_args(argv)

    import torch
    from PIL import Image

    if args.threads:
        torch.set_num_threads(args.threads)
    skip = set(args.skip.split(","))
    image = (np.asarray(Image.open(REFERENCE).convert("RGB")) if REFERENCE.is_file()
             else np.random.default_rng(0).integers(0, 255, (800, 800, 3), dtype=np.uint8))
    results: dict[str, Any] = {"torch": torch.__version__, "threads": torch.get_num_threads(), "device": "cpu"}
    for size in args.sizes.split(","):
        t = time.perf_counter()
        model = build(size, args.prefix_tokens)
        res: dict[str, Any] = {"build_s": round(time.perf_counter() - t, 1),
                               "llm": {k: model.cfg.llm.config[k] for k in ("hidden_size", "num_hidden_layers")}}
        if "kv" not in skip:
            limits = dict(kv.split("=") for kv in args.no_cache_steps.split(",") if "=" in kv)
            res["kv_cache"] = bench_kv_cache(model, args.new_tokens, int(limits.get(size, 0)))
            print(size, "kv_cache", res["kv_cache"], flush=True)
        if "features" not in skip:
            res["feature_cache"] = bench_feature_cache(model, image, args.predict_tokens)
            print(size, "feature_cache", res["feature_cache"], flush=True)
        if "batch" not in skip:
            res["batch"] = bench_batch(model, image, args.predict_tokens)
            print(size, "batch", res["batch"], flush=True)
        if args.big is not None and size == "tiny":
            res["big_geotiff"] = bench_big(model, args.big, args.predict_tokens)
            print(size, "big_geotiff", res["big_geotiff"], flush=True)
        results[size] = res
    text = json.dumps(results, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
