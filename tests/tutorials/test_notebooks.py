"""Every tutorial notebook runs top to bottom in fast mode (SC_SED_FAST=1); outputs are not saved."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TUTORIALS = ROOT / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("[0-9]*.ipynb"))

pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")


def _runner():
    spec = importlib.util.spec_from_file_location("run_notebooks", TUTORIALS / "run_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_five_tutorials_exist():
    assert len(NOTEBOOKS) >= 5, [p.name for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_has_a_parameters_cell_reading_fast_mode(path):
    cells = json.loads(path.read_text())["cells"]
    params = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1, "one cell tagged `parameters`"
    assert "SC_SED_FAST" in "".join(params[0]["source"])
    assert cells[0]["cell_type"] == "markdown", "a markdown introduction first"
    assert "TIME_PLACEHOLDER" not in "".join(cells[0]["source"])


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_fast_mode(path):
    before = path.read_bytes()
    _runner().execute(path, fast=True, write=False, timeout=600)
    assert path.read_bytes() == before, "fast mode must not write outputs back"
