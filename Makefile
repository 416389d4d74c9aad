# The two set-up commands of the README. Each creates .venv, installs, then runs.
# TORCH_SPEC picks the torch build: the default is the CPU wheel; on a CUDA machine use e.g.
#   make test TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.sdenhance-installed

.PHONY: demo test bench bench-gpu

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(VENV)/bin/sdenhance upscale examples/images/chelsea.png --scale 4 --creativity 0 -o out/chelsea_x4.png --overwrite

test: $(STAMP)
	$(VENV)/bin/ruff check sdenhance tests bench examples tools
	$(VENV)/bin/ruff format --check sdenhance tests bench examples tools
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) bench/run.py
	HF_HUB_OFFLINE=1 $(PY) bench/tiling.py --sizes 768x512,1024x768

# the GPU path (bench/gpu.py); without a CUDA GPU it says so and measures nothing
bench-gpu: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) bench/gpu.py --out bench/GPU.md
