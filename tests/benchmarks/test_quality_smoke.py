from __future__ import annotations

import json

import pytest
import torch

from .conftest import load_benchmark

METHODS = ["sed", "dense", "thresholded", "scvi"]
EXPECTED = {
    "zero_fraction_real",
    "zero_fraction_synth",
    "scc",
    "mmd",
    "energy_distance",
    "discriminability_auroc",
    "label_accuracy",
    "detection_rate_pearson",
    "nnz_per_row_wasserstein",
    "n_spurious_features",
    "memorisation_ratio",
}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("quality")
    threads = torch.get_num_threads()
    result = load_benchmark("quality").main(["--smoke", "--device", "cpu", "--out", str(out)])
    assert torch.get_num_threads() == threads  # the script restores what it pins
    return out, result


def test_quality_smoke_json(smoke):
    out, result = smoke
    data = json.loads((out / "quality.json").read_text())
    assert list(data["methods"]) == METHODS
    for method, entry in data["methods"].items():
        assert EXPECTED <= set(entry["overall"]), method
        assert entry["n_generated"] == data["dataset"]["n_heldout"]
        assert entry["train_seconds"] > 0 and entry["generate_seconds"] >= 0
        assert {r["group"] for r in entry["metrics"]} > {"all"}  # per-label rows too
    # dense and thresholded come from one trained DenseDDPM
    assert data["methods"]["thresholded"]["train_shared_with"] == "dense"
    assert data["methods"]["thresholded"]["provenance"]["threshold_rule"] == "auto"
    # SED never writes features that the data never show (a property, not a tuned number)
    assert data["methods"]["sed"]["overall"]["n_spurious_features"] == 0
    # the raw dense DDPM keeps every positive value: far fewer zeros than the data
    dense = data["methods"]["dense"]["overall"]
    assert dense["zero_fraction_synth"] < dense["zero_fraction_real"]
    assert {t["name"] for t in data["targets"]} >= {
        "SED n_spurious_features == 0",
        "SED scc >= 0.9",
        "SED mmd <= thresholded DDPM mmd",
    }
    assert all(t["passed"] in (True, False, None) for t in data["targets"])
    assert data["settings"]["budget"]["sed_epochs"] == 1
    assert result["methods"].keys() == data["methods"].keys()


def test_quality_smoke_files(smoke):
    out, _ = smoke
    for method in METHODS:
        assert (out / f"dropout_pattern_{method}.png").stat().st_size > 0
    assert (out / "metrics.png").stat().st_size > 0
    assert (out / "metrics.csv").stat().st_size > 0


def test_quality_method_selection(tmp_path):
    load_benchmark("quality").main(
        [
            "--smoke",
            "--device",
            "cpu",
            "--methods",
            "thresholded",
            "--no-figures",
            "--out",
            str(tmp_path),
        ]
    )
    data = json.loads((tmp_path / "quality.json").read_text())
    assert list(data["methods"]) == ["thresholded"]
    assert data["methods"]["thresholded"]["train_shared_with"] is None
    assert data["targets"] == []  # the SED targets need SED


def test_reshape_keeps_the_most_detected_genes_and_thins_counts():
    import numpy as np
    import scipy.sparse as sp

    import sc_sed

    q = load_benchmark("quality")
    adata = sc_sed.datasets.synthetic_counts(n_cells=200, n_genes=40, seed=0)
    data = q.Dataset("syn", adata, "counts", "cell_type", "synthetic")
    x = sp.csr_matrix(adata.layers["counts"])
    out = q.reshape(data, 10, 0.5, seed=0)
    assert out.name == "syn_top10_thin0.5" and out.adata.n_vars == 10
    top = np.argsort(-np.asarray((x > 0).sum(0)).ravel(), kind="stable")[:10]
    assert set(out.adata.var_names) == set(adata.var_names[top])
    kept = x[:, np.sort(top)].toarray()[out.adata.obs_names.map(adata.obs_names.get_loc)]
    y = out.adata.layers["counts"].toarray()
    assert (y <= kept).all() and np.array_equal(y, np.round(y))  # thinned integer counts
    assert abs(y.sum() / kept.sum() - 0.5) < 0.05
    assert (y.sum(1) > 0).all() and np.array_equal(out.adata.X.toarray(), y)
