"""The paper path at real size: training-step time, decode FPS and peak memory (a benchmark, ready for a GPU).

Builds a paper preset with random weights (``--random-weights``: every ``pretrained_path`` is dropped, the
architectures come from the preset's dicts) or from its local folders, trains it through the real
:class:`~clvnet.engine.trainer.Trainer` on GeoPixelD-format records converted by ``clvnet data convert``, and
decodes through the real :class:`~clvnet.inference.predictor.Predictor` with the KV cache. It measures:

1. the training-step time at ``--batch`` (bf16, gradient checkpointing unless ``--no-grad-ckpt``): forward,
   backward and optimiser, from the trainer's own log, after ``--warmup`` untimed steps;
2. decode FPS for one box with ``--new-tokens`` new tokens (EOS is ignored so every run decodes exactly that
   many), and for ``--boxes`` boxes decoded as one batch (boxes per second, masks included);
3. peak memory: ``torch.cuda.max_memory_allocated`` on a GPU, the process's peak RSS on a CPU.

The records are the real GeoPixelD sample in ``../shared/reference`` (``--sample`` for another annotation
JSON; a synthetic one when none is found) and its mirror image, written in GeoPixelD's own format.

GPU (the paper reports 0.08 FPS on an A6000)::

    python scripts/bench_paper.py --preset paper-native --random-weights --out bench_paper.json

CPU, real size (``make test-scale``: the 1.8b preset, one optimiser step on the two records, 16 new tokens)::

    python scripts/bench_paper.py --preset 1.8b --random-weights --check --out scale.json

``--small`` shrinks every width (the test suite runs it so). Extra ``key=value`` arguments override the model
config (``llm.config.num_hidden_layers=4``).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "geopixeld" / "P0224_0_800_0_800.json"
SMALL = ["vision.config={hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 2, "
         "image_size: 112, patch_size: 14, projection_dim: 32, hidden_act: quick_gelu}",
         "llm.config.hidden_size=64", "llm.config.intermediate_size=128", "llm.config.num_hidden_layers=2",
         "llm.config.num_attention_heads=4", "llm.config.num_key_value_heads=2", "llm.config.vocab_size=2000",
         "grounding.image_size=128",
         "grounding.backbone={hidden_size: 16, num_attention_heads: 1, image_size: [128, 128], "
         "blocks_per_stage: [1, 2, 2, 1], embed_dim_per_stage: [16, 32, 64, 128], "
         "num_attention_heads_per_stage: [1, 1, 2, 2], global_attention_blocks: [2, 4], "
         "window_size_per_stage: [8, 4, 4, 2], window_positional_embedding_background_size: [4, 4]}",
         "grounding.vision={backbone_channel_list: [128, 64, 32, 16], "
         "backbone_feature_sizes: [[32, 32], [16, 16], [8, 8]], fpn_hidden_size: 32, fpn_top_down_levels: [2, 3]}",
         "mask_decoder.config={hidden_size: 32, mlp_dim: 64, num_hidden_layers: 2, num_attention_heads: 2, "
         "iou_head_hidden_dim: 32}",
         "region.crop_size=56", "region.box_embed_hidden=16", "cgformer.num_heads=2", "loss.align_dim=16",
         "projector.hidden_size=null"]


def write_records(folder: Path, sample: Path | None) -> tuple[Path, Path]:
    """GeoPixelD annotations (the sample and its mirror image) converted to GCG JSONL; returns (jsonl, image)."""
    from PIL import Image

    from clvnet.cli import main

    src = folder / "geopixeld"
    src.mkdir(parents=True)
    if sample is not None and sample.is_file():
        ann = json.loads(sample.read_text())
        image = Image.open(sample.with_suffix(".png")).convert("RGB")
    else:                                                   # a synthetic aerial patch with two objects
        rng = np.random.default_rng(0)
        pixels = (rng.random((400, 400, 3)) * 60 + 60).astype(np.uint8)
        pixels[100:160, 80:200] = (200, 200, 210)
        pixels[260:300, 250:290] = (40, 60, 200)
        image = Image.fromarray(pixels)
        ann = {"id": 0, "gcg_description": "An aerial view of a quiet block. A <p> white roof </p> [SEG] stands "
               "at the top left, and a <p> blue pool </p> [SEG] lies at the bottom right.",
               "polygons": [[[[80, 100], [199, 100], [199, 159], [80, 159]]],
                            [[[250, 260], [289, 260], [289, 299], [250, 299]]]]}
    w = image.width
    for name, img, polys in (("sample", image, ann["polygons"]),
                             ("mirror", image.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
                              [[[[w - 1 - x, y] for x, y in poly] for poly in group] for group in ann["polygons"]])):
        img.save(src / f"{name}.png")
        (src / f"{name}.json").write_text(json.dumps({**ann, "img": f"{name}.png", "polygons": polys}))
    jsonl = folder / "records.jsonl"
    if main(["data", "convert", "geopixeld", "--src", str(src), "--out", str(jsonl)]) != 0:
        raise SystemExit("clvnet data convert failed")
    return jsonl, src / "sample.png"


def train_config(args: argparse.Namespace, jsonl: Path, out: Path) -> Any:
    """The paper experiment with the chosen model preset, trained for ``warmup + steps`` steps."""
    import dataclasses

    from clvnet.config import load_config
    from clvnet.engine.config import TrainConfig
    from clvnet.models import load_model_config

    model_over = list(args.overrides) + (SMALL if args.small else [])
    if args.random_weights:
        model_over += ["vision.pretrained_path=null", "llm.pretrained_path=null", "llm.tokenizer_path=null",
                       "llm.trust_remote_code=false", "grounding.pretrained_path=null",
                       "mask_decoder.pretrained_path=null"]
    model = load_model_config(args.preset, model_over)
    if args.device == "cpu" and not args.small:
        model = dataclasses.replace(model, llm=dataclasses.replace(model.llm, torch_dtype="bfloat16"))
    cfg = load_config(TrainConfig, "paper", section="experiments", overrides=[
        f"data.train={jsonl}", "data.val=null", "data.num_workers=0", f"train.max_steps={args.warmup + args.steps}",
        f"train.batch_size={args.batch}", f"train.device={args.device}", "train.precision=bf16",
        f"train.gradient_checkpointing={str(not args.no_grad_ckpt).lower()}", "train.save_every=0",
        "train.progress=false", "train.log_every=1", "train.tensorboard=false", f"train.cpu_threads={args.threads}",
        "schedule.warmup_steps=1", f"output_dir={out}"])
    return dataclasses.replace(cfg, model=model)


def peak_memory_gb(device: str) -> float:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20          # KiB on Linux


def decode(model: Any, image: Path, n_boxes: int, new_tokens: int, device: str) -> dict[str, Any]:
    """Boxes per second for ``n_boxes`` boxes decoded as one batch, exactly ``new_tokens`` tokens each."""
    import dataclasses

    import torch

    from clvnet.inference.predictor import Predictor

    never = dataclasses.replace(model.reasoner.ids, eos=-1)           # no id is -1: decode the whole budget
    model.reasoner.ids = never
    model.processor.ids = never
    pred = Predictor(model, device=device, batch_size=n_boxes, max_new_tokens=new_tokens)
    with pred.open(image) as raster:
        w, h = raster.width, raster.height
    boxes = [[(0.1 + 0.08 * k) * w, (0.1 + 0.05 * k) * h, (0.4 + 0.06 * k) * w, (0.45 + 0.05 * k) * h]
             for k in range(n_boxes)]
    pred.predict(image, boxes[:1], max_new_tokens=2)                  # warm-up, fills the feature cache
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t = time.perf_counter()
    out = pred.predict(image, boxes)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    dt = time.perf_counter() - t
    assert len(out) == n_boxes
    return {"boxes": n_boxes, "new_tokens": new_tokens, "seconds": round(dt, 3), "fps": round(n_boxes / dt, 4),
            "tokens_per_s": round(n_boxes * new_tokens / dt, 1)}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="paper-native", help="model preset (paper, paper-native, 1.8b, ...)")
    ap.add_argument("--random-weights", action="store_true", help="ignore pretrained paths: random weights")
    ap.add_argument("--device", default="auto", help="auto, cuda or cpu")
    ap.add_argument("--check", action="store_true",
                    help="real-size check: 1 optimiser step, 16 new tokens for 1 box, no batched decode")
    ap.add_argument("--small", action="store_true", help="every width reduced (for tests on a CPU)")
    ap.add_argument("--batch", type=int, default=2, help="training batch (records)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed training steps")
    ap.add_argument("--steps", type=int, default=3, help="timed training steps")
    ap.add_argument("--new-tokens", type=int, default=400)
    ap.add_argument("--boxes", type=int, default=8, help="boxes of the batched decode")
    ap.add_argument("--no-grad-ckpt", action="store_true", help="train without gradient checkpointing")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = auto)")
    ap.add_argument("--sample", type=Path, default=REFERENCE, help="a GeoPixelD annotation JSON (image beside it)")
    ap.add_argument("--keep", type=Path, default=None, help="keep the run folder here")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    ap.add_argument("overrides", nargs="*", help="model config overrides, e.g. llm.config.num_hidden_layers=4")
    args = ap.parse_args(argv)
    import torch

    from clvnet.engine.logging import read_csv
    from clvnet.engine.trainer import Trainer

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.check:
        args.warmup, args.steps, args.new_tokens = 0, 1, 16
    work = Path(tempfile.mkdtemp(prefix="bench_paper_"))
    try:
        t0 = time.perf_counter()
        jsonl, image = write_records(work, args.sample)
        cfg = train_config(args, jsonl, work / "run")
        t = time.perf_counter()
        trainer = Trainer(cfg)
        build_s = time.perf_counter() - t
        trainer.fit()
        rows = read_csv(work / "run" / "train_log.csv")[args.warmup:]
        per_step = {k.removesuffix("_s"): round(sum(r[k] for r in rows) / len(rows), 3)
                    for k in ("data_s", "forward_s", "backward_s", "optim_s")}
        result: dict[str, Any] = {
            "preset": args.preset, "device": args.device, "random_weights": args.random_weights,
            "small": args.small, "torch": torch.__version__, "threads": trainer.threads,
            "params": sum(p.numel() for p in trainer.model.parameters()), "trainable": trainer.n_trainable,
            "build_s": round(build_s, 1), "batch": args.batch, "timed_steps": len(rows),
            "train_step_s": round(sum(per_step.values()), 3), "train_step_split_s": per_step,
            "loss": [round(r["total"], 4) for r in rows],
        }
        if args.device.startswith("cuda"):
            result["gpu"] = torch.cuda.get_device_name()
        model = trainer.acc.unwrap_model(trainer.model).eval()
        result["decode_1"] = decode(model, image, 1, args.new_tokens, args.device)
        if not args.check:
            result[f"decode_{args.boxes}"] = decode(model, image, args.boxes, args.new_tokens, args.device)
        result["peak_memory_gb"] = round(peak_memory_gb(args.device), 2)
        result["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
        result["total_s"] = round(time.perf_counter() - t0, 1)
        text = json.dumps(result, indent=1)
        print(text)
        if args.out:
            args.out.write_text(text + "\n")
        if args.keep:
            shutil.copytree(work / "run", args.keep, dirs_exist_ok=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
