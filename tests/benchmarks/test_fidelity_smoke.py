from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from .conftest import load_benchmark


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("fidelity")
    threads = torch.get_num_threads()
    result = load_benchmark("fidelity").main(
        ["--smoke", "--device", "cpu", "--out", str(out), "--n-diagnostic-cells", "16"]
    )
    assert torch.get_num_threads() == threads
    return out, result


def test_fidelity_smoke_outputs(smoke):
    out, result = smoke
    data = json.loads((out / "fidelity.json").read_text())
    assert list(data["methods"]) == ["real (train)", "sed", "thresholded", "scvi"]
    for entry in data["methods"].values():
        for key in ("library_size_w1", "detected_genes_w1", "gene_detection_pearson",
                    "gene_corr_pearson", "scc", "discriminability_auroc", "auroc_per_label"):  # fmt: skip
            assert key in entry, key
    diag = data["sed_diagnostics"]
    carry = diag["latent_carry"]
    assert carry["n_cells"] == 16
    assert {"library_size_corr_own_latent", "detected_genes_corr_same_label_latent"} <= set(carry)
    assert set(diag["latent_usage"]) == {"n_cells", "encoded", "diffusion", "shuffled", "constant"}
    exposure = diag["exposure"]
    assert 0 <= exposure["p_end_before_end_teacher_forced"] <= 1
    assert len(exposure["curves_free_running"]["p_end"]) == len(exposure["step_edges"]) - 1
    # the compact summary (the file committed for real data sets) has no per-cell arrays
    summary = json.loads((out / "smoke.json").read_text())
    assert summary["code"]["git_commit"] is not None and "budget" in summary
    assert "_scatter" not in summary["sed_diagnostics"]["latent_carry"]
    assert "curves_teacher_forced" not in summary["sed_diagnostics"]["exposure"]
    assert "| detected genes W1 |" in (out / "smoke.md").read_text()
    for name in ("cell_size_distributions", "gene_agreement", "latent_carry", "exposure_bias"):
        assert (out / f"{name}.png").stat().st_size > 0
    assert result["methods"].keys() == data["methods"].keys()


def test_fidelity_metrics_identical_and_shifted():
    stats = load_benchmark("_fidelity_stats")
    rng = np.random.default_rng(0)
    x = sp.csr_matrix(rng.poisson(0.5, size=(60, 30)).astype(float))
    same = stats.fidelity_metrics(x, x, np.arange(10))
    assert same["library_size_w1"] == 0 and same["detected_genes_w1"] == 0
    assert same["gene_detection_pearson"] == pytest.approx(1.0)
    assert same["gene_corr_pearson"] == pytest.approx(1.0)
    doubled = stats.fidelity_metrics(x, 2 * x, np.arange(10))
    assert doubled["library_size_mean_synth"] == pytest.approx(
        2 * doubled["library_size_mean_real"]
    )
    assert doubled["detected_genes_w1"] == 0  # same zeros, other values


def test_frame_puts_end_after_the_last_pair():
    sed = load_benchmark("_fidelity_sed")
    d = 10
    index = torch.tensor([[1, 4, d + 2], [0, 2, 7]])
    value = torch.ones(2, 3)
    framed, vals = sed._frame(index, value, d)
    assert framed[0].tolist() == [d + 1, 1, 4, d, d + 2]
    assert framed[1].tolist() == [d + 1, 0, 2, 7, d]
    assert vals.shape == framed.shape


def test_parse_kwargs():
    fid = load_benchmark("fidelity")
    assert fid.parse_kwargs(["a=1", "b=0.5", "c=x", "d=true"]) == {
        "a": 1,
        "b": 0.5,
        "c": "x",
        "d": True,
    }
    with pytest.raises(SystemExit):
        fid.parse_kwargs(["novalue"])


def test_bernoulli_index_nll_matches_direct_sum():
    stats = load_benchmark("_fidelity_stats")
    rng = np.random.default_rng(1)
    train = (rng.random((50, 12)) < 0.3) * rng.integers(1, 5, (50, 12))
    held = (rng.random((10, 12)) < 0.3) * rng.integers(1, 5, (10, 12))
    rate = np.clip((train > 0).mean(0), 1e-6, 1 - 1e-6)
    seen = (train > 0).mean(0) > 0
    det = (held > 0).astype(float)
    ll = (det * np.log(rate) + (1 - det) * np.log(1 - rate))[:, seen].sum()
    expected = -ll / (det[:, seen].sum() + len(held))
    got = stats.bernoulli_index_nll(sp.csr_matrix(train), sp.csr_matrix(held))
    assert got == pytest.approx(expected)


def test_fidelity_autoencoder_only(tmp_path):
    result = load_benchmark("fidelity").main(
        ["--smoke", "--device", "cpu", "--out", str(tmp_path), "--autoencoder-only",
         "--n-diagnostic-cells", "8", "--sed-kwargs", "hazard_init=false"]
    )  # fmt: skip
    report = result["autoencoder"]
    assert report["teacher_forced"]["index_nll_per_token"] > 0
    assert report["teacher_forced"]["bernoulli_index_nll_per_token"] > 0
    assert report["reconstruction"]["n_cells"] >= 8
    assert result["sed_kwargs"] == {"hazard_init": False}
    saved = json.loads((tmp_path / "smoke_autoencoder.json").read_text())
    assert "curves_teacher_forced" not in saved["autoencoder"]["exposure"]
