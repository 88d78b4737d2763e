# Two commands do all the set-up on a fresh machine:
#   make demo   -> creates .venv, installs torch + sc_sed, runs `sc-sed demo`
#   make test   -> creates .venv, installs torch + sc_sed[test], runs pytest
# Override the torch requirement for GPU machines, e.g. `make test TORCH=torch`.
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
DEMO_ARGS ?=
PYTEST_ARGS ?=

.PHONY: demo test venv lint bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install $(TORCH)
	$(PIP) install -e ".[dev]"
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(VENV)/bin/sc-sed demo $(DEMO_ARGS)

test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check sc_sed tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info sc_sed_demo
