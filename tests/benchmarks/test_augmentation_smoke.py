"""benchmarks/augmentation.py runs end to end (--smoke) and writes a complete summary."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from .conftest import load_benchmark


def test_augmentation_smoke(tmp_path):
    threads = torch.get_num_threads()
    bench = load_benchmark("augmentation")
    result = bench.main(["--smoke", "--out", str(tmp_path)])
    assert torch.get_num_threads() == threads  # the script restores what it pins
    data = json.loads((tmp_path / "augmentation.json").read_text())
    assert data["complete"] is True and result["complete"] is True
    assert (tmp_path / "augmentation.md").read_text().startswith("# Rare-type augmentation")
    assert data["arms"] == list(bench.ARMS) and result["arms"] == data["arms"]
    # one summary row per arm and classifier; metrics in [0, 1]; both seeds counted
    pairs = {(r["arm"], r["classifier"]) for r in data["summary"]}
    assert pairs == {(a, c) for a in bench.ARMS for c in ("logreg", "knn")}
    for row in data["summary"]:
        assert row["n_seeds"] == 2 and row["n_rare"] == 5
        assert all(0 <= row[m] <= 1 for m in ("rare_recall", "rare_f1", "macro_f1"))
        # paired CIs against both baselines, except against itself
        for base in ("real", "duplicates"):
            key = f"vs_{base}"
            assert (key in row) == (row["arm"] != base)
            if key in row:
                ci = row[key]["rare_f1"]
                assert ci["n"] == 2 and ci["ci_low"] <= ci["mean"] <= ci["ci_high"]
    # the real-only arm's paired difference against duplicates is minus the converse
    by = {(r["arm"], r["classifier"]): r for r in data["summary"]}
    d1 = by[("real", "logreg")]["vs_duplicates"]["rare_f1"]["mean"]
    d2 = by[("duplicates", "logreg")]["vs_real"]["rare_f1"]["mean"]
    assert np.isclose(d1, -d2)
    # fidelity per arm: marker metrics with their split-half reference (none for SMOTE)
    fid = {r["arm"]: r for r in data["fidelity"]}
    for arm in ("real", "duplicates", "scvi", "sed", "sed_guided", "sed_like"):
        assert {"logfc_pearson", "logfc_pearson_split_half", "ref_accuracy"} <= set(fid[arm])
        assert 0 <= fid[arm]["ref_accuracy"] <= 1
    assert fid["smote"].get("logfc_pearson") is None
    # the guidance of sed_guided was chosen from the grid on the validation cells
    for cut in data["per_cut"]:
        assert cut["guidance"]["chosen"] in (1.0, 2.0)
        assert set(cut["guidance"]["validation_rare_f1"]) == {"1.0", "2.0"}
        assert cut["n_synth"] >= 5


def test_augmentation_stopped_early_keeps_the_finished_cuts(tmp_path, monkeypatch):
    """A run that fails (or is stopped) after its first cut leaves that cut's summary."""
    bench = load_benchmark("augmentation")
    generate_arms, calls = bench.generate_arms, []

    def fail_on_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return generate_arms(*args, **kwargs)

    monkeypatch.setattr(bench, "generate_arms", fail_on_second)
    with pytest.raises(KeyboardInterrupt):
        bench.main(["--smoke", "--out", str(tmp_path), "--arms", "real", "duplicates", "sed"])
    data = json.loads((tmp_path / "augmentation.json").read_text())
    assert data["complete"] is False
    assert {r["seed"] for r in data["records"]} == {0} and len(data["per_cut"]) == 1
    assert all(row["n_seeds"] == 1 for row in data["summary"])
    md = (tmp_path / "augmentation.md").read_text()
    assert "Incomplete run" in md and "CD19+ B" in md


def test_augmentation_runs_split_by_seed_merge_into_one_summary(tmp_path):
    """Seeds run in two processes (--seed-start) summarise together as one run (--merge)."""
    bench = load_benchmark("augmentation")
    arms = ["--arms", "real", "duplicates", "sed"]
    for start in (0, 1):
        out = tmp_path / f"run{start}"
        bench.main(
            ["--smoke", "--seeds", "1", "--seed-start", str(start), "--out", str(out), *arms]
        )
    runs = [tmp_path / f"run{s}" / "augmentation.json" for s in (0, 1)]
    assert [json.loads(p.read_text())["per_cut"][0]["seed"] for p in runs] == [0, 1]
    merged = bench.main(["--merge", *map(str, runs), "--out", str(tmp_path / "merged")])
    data = json.loads((tmp_path / "merged" / "augmentation.json").read_text())
    assert data["complete"] is True and merged["settings"]["seeds"] == [0, 1]
    assert {r["seed"] for r in data["records"]} == {0, 1}
    assert all(row["n_seeds"] == 2 for row in data["summary"])
    by = {(r["arm"], r["classifier"]): r for r in data["summary"]}
    for arm in ("duplicates", "sed"):  # the paired difference is the mean of the two seeds'
        diffs = [
            {(r["arm"], r["classifier"]): r for r in json.loads(p.read_text())["summary"]}[
                (arm, "logreg")
            ]["vs_real"]["rare_f1"]["mean"]
            for p in runs
        ]
        assert np.isclose(by[(arm, "logreg")]["vs_real"]["rare_f1"]["mean"], np.mean(diffs))
    with pytest.raises(SystemExit, match="is in both"):  # the same cut twice
        bench.main(["--merge", str(runs[0]), str(runs[0]), "--out", str(tmp_path / "twice")])
    # runs over other n_rare (or types) merge; the summary lists every case
    wider = json.loads(runs[1].read_text())
    wider["settings"]["n_rare"] = [25]
    for item in (*wider["records"], *wider["per_cut"]):
        item["n_rare"] = 25
    (tmp_path / "wider.json").write_text(json.dumps(wider))
    both = bench.main(
        ["--merge", str(runs[0]), str(tmp_path / "wider.json"), "--out", str(tmp_path / "both")]
    )
    assert both["settings"]["n_rare"] == [5, 25]
    assert {r["n_rare"] for r in both["summary"]} == {5, 25}
    other = json.loads(runs[1].read_text())
    other["settings"]["n_steps"] = 7
    runs[1].write_text(json.dumps(other))
    with pytest.raises(SystemExit, match="other settings .*n_steps"):
        bench.main(["--merge", *map(str, runs), "--out", str(tmp_path / "mixed")])
