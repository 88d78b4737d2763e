"""Smoke test of benchmarks/kl_weight.py (runs, pairs weights by seed, writes its summary)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from .conftest import load_benchmark

kl_weight = load_benchmark("kl_weight")


def test_paired_corr_is_the_per_column_correlation():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(50, 3))
    b = np.column_stack([a[:, 0], -a[:, 1], rng.normal(size=50)])
    corr = kl_weight.paired_corr(a, b)
    assert corr[0] == pytest.approx(1.0) and corr[1] == pytest.approx(-1.0)
    assert corr[2] == pytest.approx(np.corrcoef(a[:, 2], b[:, 2])[0, 1])


def test_smoke_runs_each_weight_and_writes_the_summary(tmp_path):
    result = kl_weight.main(["--smoke", "--kl-weights", "1e-6", "0.1", "--out", str(tmp_path)])
    assert [r["kl_weight"] for r in result["runs"]] == [1e-6, 0.1]
    assert all(0.0 <= r["rec_auroc"] <= 1.0 for r in result["runs"])
    assert all(r["mmd"] is None for r in result["runs"])  # no --generate: not measured
    saved = json.loads((tmp_path / "kl_weight.json").read_text())
    assert saved["complete"] and [s["kl_weight"] for s in saved["summary"]] == [1e-6, 0.1]
