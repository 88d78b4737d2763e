from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "out_of_core.py"


@pytest.mark.slow
def test_out_of_core_smoke():
    spec = importlib.util.spec_from_file_location("out_of_core_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    lines = module.main(["--rows", "600", "--features", "40", "--nnz", "5", "--steps", "2"])
    matrix, *modes = lines
    assert matrix["rows"] == 600 and matrix["matrix_mib"] > 0
    assert [m["mode"] for m in modes] == ["backed", "memory"]
    for m in modes:
        assert m["peak_mib"] >= m["setup_peak_mib"] > 0
        assert abs(m["above_baseline_mib"] - (m["peak_mib"] - m["baseline_mib"])) <= 1
