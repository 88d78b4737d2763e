"""Shared helper of the benchmark smoke tests: import a script from ``benchmarks/``."""

from __future__ import annotations

import importlib.util
import logging
import sys
import warnings
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def load_benchmark(name: str) -> ModuleType:
    """Import ``benchmarks/<name>.py`` as the module ``name``.

    ``benchmarks/`` goes on ``sys.path`` (the scripts import their siblings) and the module
    into ``sys.modules`` (dataclasses look their module up while it executes).
    """
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


#: Loggers the scripts quieten for their own runs (they set levels process-wide).
_QUIETENED = ("lightning", "lightning.pytorch", "scvi", "sc_sed", "sc_sed.tl")


@pytest.fixture(autouse=True)
def _restore_logging_and_warnings():
    """Undo the scripts' log levels and warning filters, so later tests see sc_sed's logs."""
    levels = {name: logging.getLogger(name).level for name in _QUIETENED}
    with warnings.catch_warnings():
        yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
