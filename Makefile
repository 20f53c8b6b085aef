# clvnet: the two commands a newcomer needs are `make quickstart` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU build of torch by default; GPU users: install your CUDA torch into .venv first, then `make install TORCH_SPEC=`.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: install quickstart ablate test test-slow test-scale test-browser lint check-wheel demo bench bench-eval bench-train clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@if [ -n "$(TORCH_SPEC)" ] && ! $(BIN)/python -c "import torch" 2>/dev/null; then \
	  echo "installing $(TORCH_SPEC) (CPU build)"; $(BIN)/python -m pip install -q "$(TORCH_SPEC)"; fi
	$(BIN)/python -m pip install -q -e ".[all]"
	touch $(STAMP)

install: $(STAMP)

quickstart: $(STAMP)
	$(BIN)/clvnet quickstart $(ARGS)

ablate: $(STAMP)
	$(BIN)/clvnet ablate --suite paper --seeds 3 --out runs/ablate $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q $(ARGS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow $(ARGS)

test-scale: $(STAMP)
	$(BIN)/python -m pytest -q -s -m scale $(ARGS)

test-browser: $(STAMP)
	$(BIN)/python -m pytest -q -m browser $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check clvnet tests scripts
	$(BIN)/mypy
	$(BIN)/lint-imports

check-wheel:
	TORCH_SPEC="$(TORCH_SPEC)" bash scripts/ci_wheel_check.sh $(PY)

demo: $(STAMP)
	$(BIN)/clvnet demo --checkpoint runs/quickstart/checkpoint $(ARGS)

bench: $(STAMP)
	$(BIN)/python scripts/bench_synth.py

bench-eval: $(STAMP)
	$(BIN)/python scripts/bench_eval.py

bench-train: $(STAMP)
	$(BIN)/python scripts/bench_train.py

clean:
	rm -rf runs build *.egg-info
