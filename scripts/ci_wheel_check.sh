#!/usr/bin/env bash
# Prove that a normal (non-editable) install works: build a wheel, install it into a fresh venv, and run the
# CLI from outside the repository (shipped presets, SynthRS, a 5-step training run).
# Usage: bash scripts/ci_wheel_check.sh [python]   (TORCH_SPEC=torch==2.13.0 by default; empty keeps pip's choice)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
py=${1:-python3}
torch_spec=${TORCH_SPEC-torch==2.13.0}
work=$(mktemp -d -t clvnet-wheel.XXXXXX)
trap 'rm -rf "$work"' EXIT

"$py" -m venv "$work/venv"
pip=("$work/venv/bin/python" -m pip)
"${pip[@]}" install -q --upgrade pip
[ -n "$torch_spec" ] && "${pip[@]}" install -q "$torch_spec"
"${pip[@]}" wheel -q --no-deps -w "$work/dist" "$repo"
"${pip[@]}" install -q "$work"/dist/clvnet-*.whl

cd "$work"                      # outside the repository: only the installed package is visible
clvnet=("$work/venv/bin/clvnet")
"$work/venv/bin/python" -c "import clvnet, sys; assert '$repo' not in clvnet.__file__, clvnet.__file__"
"${clvnet[@]}" info --preset paper
"${clvnet[@]}" info --preset tiny > /dev/null
"${clvnet[@]}" quickstart --help > /dev/null
"${clvnet[@]}" configs
"${clvnet[@]}" data synth --out synth/train --split train --num 5 --seed 0
"${clvnet[@]}" train --config tiny_synthrs data.train=synth/train/records.jsonl data.val=null data.num_workers=0 \
  train.max_steps=5 train.batch_size=2 train.device=cpu train.progress=false train.save_every=0 output_dir=run
test -f run/checkpoint/model.safetensors
echo "wheel check: ok"
