# Two commands do all the set-up on a fresh machine:
#   make demo   -> creates .venv, installs torch + sc_sed (the runtime only), runs `sc-sed demo`
#   make test   -> the same, plus the test extras (pytest, the notebook kernel, TileDB-SOMA,
#                  Sphinx for the docs test), runs pytest
# and, in the same venv:
#   make docs       -> adds the docs extras, builds the documentation offline into
#                      docs/_build/html (warnings = errors; notebooks are rendered, not executed)
#   make tutorials  -> adds the notebook extras, re-executes every notebook in tutorials/
#   make lint       -> adds ruff, checks the code
# Each extra has its own stamp file (.venv/.installed-<extra>), so a target installs only
# what it needs. TORCH chooses the torch build, installed before sc_sed: the default pin is
# the CPU build on these machines; e.g. `make test TORCH=torch` for the registry's CUDA build.
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
DEMO_ARGS ?=
PYTEST_ARGS ?=

.PHONY: demo test venv lint bench clean docs tutorials
.PRECIOUS: $(VENV)/.installed-%

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install $(TORCH)
	$(PIP) install -e .
	touch $@

# one stamp per extra (test, docs, notebooks, lint): pip adds only that extra's packages
$(VENV)/.installed-%: $(VENV)/.installed
	$(PIP) install -e ".[$*]"
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(VENV)/bin/sc-sed demo $(DEMO_ARGS)

test: $(VENV)/.installed-test
	$(PY) -m pytest $(PYTEST_ARGS)

docs: $(VENV)/.installed-docs
	$(PY) -m sphinx -W --keep-going -b html docs docs/_build/html

tutorials: $(VENV)/.installed-notebooks
	$(PY) -m ipykernel install --sys-prefix --name sc_sed --display-name "Python (sc_sed)"
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(PY) tutorials/run_notebooks.py

lint: $(VENV)/.installed-lint
	$(VENV)/bin/ruff check sc_sed tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info sc_sed_demo docs/_build docs/generated docs/tutorials docs/jupyter_execute
