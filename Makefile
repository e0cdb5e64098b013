# Two commands matter: `make demo` and `make test`. Both set the project up first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.reliqa-installed
TORCH_SPEC ?= torch==2.13.0

.PHONY: setup browser-deps demo test lint check-torch clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch is pinned to the CPU build first: these machines keep torch 2.13.0 (CPU) on local
	# disk and pip takes it from there; an unpinned torch would be a multi-GB CUDA build.
	# Elsewhere set TORCH_SPEC (e.g. TORCH_SPEC="torch==2.13.0 --index-url
	# https://download.pytorch.org/whl/cpu") to choose the build.
	$(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -e ".[web,plots,parquet,xlsx,pretrained,ray,dev,bench]"
	# piq, the reference of tests/test_metrics_fr_extra.py and benchmarks/metrics_speed.py, without
	# its dependencies: piq requires torchvision, and resolving that replaces the CPU torch with
	# torch 2.14.1 + CUDA (seen with pip --dry-run). The tests load piq's weight-free modules only.
	$(BIN)/python -m pip install -q --no-deps "piq==0.8.0"
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/reliqa demo --out demo_out --overwrite
	@echo "open demo_out/index.html"

# Debian's chromium for the browser test (tests/test_browser.py), never Playwright's download.
browser-deps:
	@if command -v chromium >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update && apt-get install -y --no-install-recommends chromium; \
	else echo "note: no chromium and no root apt-get here: tests/test_browser.py will skip"; fi

# CI (.ci/run) runs exactly this: the right torch build, ruff, mypy, then the tests.
test: setup browser-deps check-torch lint
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

# Fails when setup installed a CUDA build of torch on a machine without a GPU.
check-torch: setup
	$(BIN)/python .ci/check_torch.py

lint: setup
	$(BIN)/ruff check src tests benchmarks .ci
	$(BIN)/mypy

clean:
	rm -rf $(VENV) demo_out .pytest_cache
