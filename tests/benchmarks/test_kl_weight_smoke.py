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


def _saved(path, weights, seeds, auroc, **settings):
    """A kl_weight.json as the script writes it, with one row per (weight, seed)."""
    runs = [
        {**dict.fromkeys(kl_weight.COLUMNS), "kl_weight": w, "seed": s, "gen_auroc": auroc(w, s)}
        for s in seeds
        for w in weights
    ]
    result = {
        "dataset": {"name": "pbmc68k", "n_train": 560, "n_heldout": 140},
        "settings": {"threads": 1, "seeds": seeds, "kl_weights": weights, "generate": True,
                     "n_steps": 50, "smoke": False, **settings},
        "complete": True,
        "runs": runs,
        "summary": [],
        "environment": {},
    }  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result))
    return path


def test_merge_pairs_weights_run_in_other_processes(tmp_path):
    def auroc(w, s):
        return 0.8 - 0.1 * (w == 1.0) + 0.01 * s

    a = _saved(tmp_path / "a" / "kl_weight.json", [1e-6], [0, 1, 2], auroc)
    b = _saved(tmp_path / "b" / "kl_weight.json", [1.0], [0, 1, 2], auroc)
    merged = kl_weight.main(["--merge", str(a), str(b), "--out", str(tmp_path / "m")])
    summary = {row["kl_weight"]: row for row in merged["summary"]}
    assert summary[1e-6]["n_seeds"] == 3 and summary[1.0]["n_seeds"] == 3
    assert summary[1.0]["gen_auroc"] == pytest.approx(0.71)
    # every seed differs by exactly -0.1 against the first weight, so the interval is a point
    assert summary[1.0]["gen_auroc_diff_ci"] == "[-0.100, -0.100]"
    saved = json.loads((tmp_path / "m" / "kl_weight.json").read_text())
    assert saved["settings"]["seeds"] == [0, 1, 2] and saved["complete"]
    # an explicit order makes weight 1 the reference
    again = kl_weight.main(
        ["--merge", str(a), str(b), "--out", str(tmp_path / "m2"), "--kl-weights", "1", "1e-6"]
    )
    assert again["summary"][0]["kl_weight"] == 1.0
    assert again["summary"][1]["gen_auroc_diff_ci"] == "[+0.100, +0.100]"


def test_merge_refuses_repeated_arms_and_other_settings(tmp_path):
    a = _saved(tmp_path / "a" / "kl_weight.json", [1e-6], [0], lambda w, s: 0.5)
    twice = _saved(tmp_path / "b" / "kl_weight.json", [1e-6], [0], lambda w, s: 0.6)
    with pytest.raises(SystemExit, match="in both"):
        kl_weight.main(["--merge", str(a), str(twice), "--out", str(tmp_path / "m")])
    other = _saved(tmp_path / "c" / "kl_weight.json", [1.0], [0], lambda w, s: 0.5, n_steps=20)
    with pytest.raises(SystemExit, match="n_steps"):
        kl_weight.main(["--merge", str(a), str(other), "--out", str(tmp_path / "m")])
    assert not (tmp_path / "m").exists()
