from __future__ import annotations

import pytest

from .conftest import load_benchmark


@pytest.mark.slow
def test_out_of_core_smoke():
    lines = load_benchmark("out_of_core").main(
        ["--rows", "600", "--features", "40", "--nnz", "5", "--steps", "2"]
    )
    matrix, *modes = lines
    assert matrix["rows"] == 600 and matrix["matrix_mib"] > 0
    assert [m["mode"] for m in modes] == ["backed", "memory"]
    for m in modes:
        assert m["peak_mib"] >= m["setup_peak_mib"] > 0
        assert abs(m["above_baseline_mib"] - (m["peak_mib"] - m["baseline_mib"])) <= 1
