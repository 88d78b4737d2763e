"""Smoke test of benchmarks/recipe_arms.py (runs, pairs arms by seed, writes its summary)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import recipe_arms  # noqa: E402


def test_smoke_pairs_arms_by_seed(tmp_path):
    result = recipe_arms.main(["--smoke", "--out", str(tmp_path)])
    runs, summary = result["runs"], result["summary"]
    assert {r["seed"] for r in runs} == {0, 1}
    assert [s["arm"] for s in summary] == ["ae4/16-8:8", "ae4/8-4:4"]
    assert all(s["n_seeds"] == 2 for s in summary)
    other = summary[1]
    # the paired difference is the mean of the per-seed differences
    by = {(r["arm"], r["seed"]): r["discriminability_auroc"] for r in runs}
    diffs = [by[("ae4/8-4:4", s)] - by[("ae4/16-8:8", s)] for s in (0, 1)]
    assert other["discriminability_auroc_diff"] == pytest.approx(sum(diffs) / 2)
    assert json.loads((tmp_path / "recipe_arms_pbmc68k160.json").read_text())["settings"]["smoke"]


def test_bad_arm_is_refused():
    with pytest.raises(SystemExit, match="WIDTHS:STEPS"):
        recipe_arms.parse_args(["--arms", "512x256"])
