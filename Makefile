# The two commands of the README. Both create ./.venv with plain pip (no conda, no uv).
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python

.PHONY: demo test lint types check clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

# Set up, then unlearn class 0 of the embedded digits dataset with CaMU (3 seeds) and print the table.
demo: $(VENV)/.installed
	$(VENV)/bin/causalunlearn run graphs/camu.yaml --dataset digits --scenario class:0 \
	    --preset digits-class --seeds 0,1,2 --threads 1 --out runs/quickstart --overwrite

# Set up, then run the default test suite (CPU, no files outside the repository).
test: $(VENV)/.installed
	$(PY) -m pytest -q

# The gates of .ci/run: lint and format (ruff), types (mypy on what [tool.mypy] in pyproject.toml lists).
LINTED = causalunlearn tests notebooks benchmarks scripts

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)

types: $(VENV)/.installed
	$(VENV)/bin/mypy

check: lint types

clean:
	rm -rf $(VENV) runs .pytest_cache
