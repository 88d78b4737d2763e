# Two commands do all the set-up on a fresh machine:
#   make demo   -> creates .venv, installs torch + sc_sed, runs `sc-sed demo`
#   make test   -> creates .venv, installs torch + sc_sed[dev], runs pytest
# and, in the same venv:
#   make docs       -> builds the documentation offline into docs/_build/html (warnings = errors)
#   make tutorials  -> re-executes every notebook in tutorials/ at full settings, in place
# Override the torch requirement for GPU machines, e.g. `make test TORCH=torch`.
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
DEMO_ARGS ?=
PYTEST_ARGS ?=

.PHONY: demo test venv lint bench clean docs tutorials

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

docs: venv
	$(PY) -m sphinx -W --keep-going -b html docs docs/_build/html

tutorials: venv
	$(PY) -m ipykernel install --sys-prefix --name sc_sed --display-name "Python (sc_sed)"
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(PY) tutorials/run_notebooks.py

lint: venv
	$(VENV)/bin/ruff check sc_sed tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info sc_sed_demo docs/_build docs/generated docs/tutorials docs/jupyter_execute
