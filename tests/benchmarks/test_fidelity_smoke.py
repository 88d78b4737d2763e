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
    assert list(data["methods"]) == [
        "real (train)", "Poisson (label mean)", "sed", "thresholded", "scvi"
    ]
    for entry in data["methods"].values():
        for key in ("library_size_w1", "detected_genes_w1", "gene_detection_pearson",
                    "gene_corr_pearson", "scc", "discriminability_auroc", "auroc_per_label"):  # fmt: skip
            assert key in entry, key
    diag = data["sed_diagnostics"]
    carry = diag["latent_carry"]
    assert carry["n_cells"] == 16
    assert {"library_size_corr_own_latent", "detected_genes_corr_same_label_latent"} <= set(carry)
    assert set(diag["latent_usage"]) == {"n_cells", "encoded", "diffusion", "shuffled", "constant"}
    for name in ("encoded", "diffusion", "shuffled", "constant"):
        assert 0 <= diag["latent_usage"][name]["label_accuracy"] <= 1, name
    exposure = diag["exposure"]
    assert 0 <= exposure["p_end_before_end_teacher_forced"] <= 1
    assert len(exposure["curves_free_running"]["p_end"]) == len(exposure["step_edges"]) - 1
    assert exposure["n_calibration_cells"] == 16
    for key in ("teacher_forced", "free_running"):
        assert 0 < exposure[f"expected_over_actual_detections_{key}"] < 10
    # the compact summary (the file committed for real data sets) has no per-cell arrays
    summary = json.loads((out / "smoke.json").read_text())
    assert summary["code"]["git_commit"] is not None and "budget" in summary
    assert "_scatter" not in summary["sed_diagnostics"]["latent_carry"]
    assert "curves_teacher_forced" not in summary["sed_diagnostics"]["exposure"]
    assert "| detected genes W1 |" in (out / "smoke.md").read_text()
    assert "| label_accuracy |" in (out / "smoke.md").read_text()
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
    assert same["pc_sd_ratio_mean"] == pytest.approx(1.0)
    assert same["off_pc_norm_ratio"] == pytest.approx(1.0)


def test_pc_spread_sees_blurred_cells_and_off_axis_noise():
    stats = load_benchmark("_fidelity_stats")
    rng = np.random.default_rng(0)
    # two cell types with disjoint marker genes, 400 reads per cell
    profile = np.full((2, 40), 0.2)
    profile[0, :10], profile[1, 10:20], profile[:, 30:] = 5.0, 5.0, 0.0
    types = rng.integers(0, 2, 300)

    def cells(mix):
        p = profile[types] * (1 - mix) + profile[1 - types] * mix
        return sp.csr_matrix(rng.poisson(400 * p / p.sum(1, keepdims=True)).astype(float))

    genes = np.arange(40)
    real, again = cells(0.0), cells(0.0)
    sharp = stats.pc_spread(real, again, genes, n_pcs=3)
    blurred = stats.pc_spread(real, cells(0.4), genes, n_pcs=3)  # 60/40 mixtures
    assert 0.8 < sharp["pc_sd_ratio_mean"] < 1.2
    assert blurred["pc_sd_ratio_min"] < 0.5 * sharp["pc_sd_ratio_min"]
    noisy = again.toarray()
    noisy[:, 30:] += rng.poisson(3.0, size=(300, 10))  # genes real cells never have
    assert stats.pc_spread(real, sp.csr_matrix(noisy), genes, 3)["off_pc_norm_ratio"] > 1.3
    assert np.isnan(stats.pc_spread(real, again, np.arange(0))["pc_sd_ratio_mean"])


def test_label_mean_poisson_keeps_labels_sizes_and_zeros():
    stats = load_benchmark("_fidelity_stats")
    rng = np.random.default_rng(0)
    x = rng.poisson(3.0, size=(60, 12)).astype(np.float32)
    labels = np.repeat(["a", "b", "c"], 20)
    x[labels == "b", :4] = 0  # genes label b never has
    rows = np.array([0, 25, 26, 45, 3, 21])  # mixed labels, not sorted
    out = stats.label_mean_poisson(sp.csr_matrix(x), labels, rows, seed=1)
    assert out.shape == (6, 12)
    dense = out.toarray()
    assert (dense[labels[rows] == "b", :4] == 0).all()  # exact zeros where the label has none
    assert (dense[labels[rows] != "b", :4].sum() > 0)
    big = stats.label_mean_poisson(sp.csr_matrix(x), labels, np.repeat(rows, 400), seed=1)
    lib = big.toarray().sum(1).reshape(6, 400).mean(1)
    np.testing.assert_allclose(lib, x[rows].sum(1), rtol=0.03)  # each row's library size


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


@pytest.mark.parametrize("index_head", ["flat", "factorised"])
def test_expected_detections_of_independent_hazards(index_head):
    """With history-free hazards r_j every row passes each allowed feature once: Σ r_j."""
    import sc_sed

    sed = load_benchmark("_fidelity_sed")
    adata = sc_sed.datasets.synthetic_counts(n_cells=12, n_genes=30, n_types=2, seed=0)
    sc_sed.SEDModel.setup_anndata(adata, layer="counts")
    model = sc_sed.SEDModel(adata, n_hidden=16, n_ff=32, n_layers=1, n_latent=4,
                            index_head=index_head, block_size=7)  # fmt: skip
    head = model.module.decoder.index_head
    allowed = model.module.allowed_features
    assert not allowed.all()  # a gene unseen in these cells: never emitted, never passed
    rate = torch.where(allowed, torch.linspace(0.05, 0.6, 30), 0.0)
    with torch.no_grad():
        for p in head.parameters():
            p.zero_()
        head.init_hazards(rate)
    model.module.eval()
    b = next(model._token_batches(adata, np.arange(12), 12))
    z = torch.randn(12, 4)
    got = sed.expected_detections(model, z, b["tokens_index"], b["tokens_value"], max_states=93)
    torch.testing.assert_close(got, torch.full((12,), float(rate.sum())))


def test_sed_seed_seeds_sed_only():
    """--sed-seed changes SED's initialisation; --seed alone keeps it (one split, one init)."""
    import sc_sed

    quality = load_benchmark("quality")
    adata = sc_sed.datasets.synthetic_counts(n_cells=20, n_genes=30, n_types=2, seed=0)
    data = quality.Dataset("tiny", adata, "counts", "cell_type", "synthetic")
    budget = quality.resolve_budget(load_benchmark("fidelity").parse_args(["--smoke"]), "smoke")

    def weights(sed_seed):
        ctx = quality.RunContext(adata, data, budget, {}, "cpu", 0, 8, False, sed_seed=sed_seed)
        return quality.build_sed(ctx).module.decoder.index_head.proj.weight

    torch.testing.assert_close(weights(None), weights(0))
    assert not torch.equal(weights(None), weights(1))


def test_diffusion_latents_carry_the_labels_they_were_sampled_for():
    """Each diffusion latent comes with its requested label, in the order of the latents."""
    import sc_sed

    sed = load_benchmark("_fidelity_sed")
    adata = sc_sed.datasets.synthetic_counts(n_cells=12, n_genes=30, n_types=3, seed=0)
    sc_sed.SEDModel.setup_anndata(adata, layer="counts", batch_key="batch", labels_key="cell_type")
    model = sc_sed.SEDModel(adata, n_hidden=16, n_ff=32, n_layers=1, n_latent=4)
    model.train_autoencoder(1, batch_size=12, enable_progress_bar=False)
    model.train_diffusion(1, batch_size=12, early_stopping=False, enable_progress_bar=False)
    counts = {"type_2": 3, "type_0": 2}
    z, labels = sed.diffusion_latents(model, counts, n_steps=2, seed=0)
    assert z.shape == (5, 4)
    assert list(labels) == ["type_2"] * 3 + ["type_0"] * 2


def test_sed_model_defaults_leave_sizes_epochs_and_batch_to_the_model(monkeypatch):
    """--sed-model-defaults: SEDModel's own sizes, epochs and minibatch; given flags still apply."""
    import inspect

    import sc_sed

    quality = load_benchmark("quality")
    parse = load_benchmark("fidelity").parse_args
    adata = sc_sed.datasets.synthetic_counts(n_cells=20, n_genes=30, n_types=2, seed=0)
    data = quality.Dataset("tiny", adata, "counts", "cell_type", "synthetic")
    preset = quality.resolve_budget(parse(["--smoke"]), "smoke")
    budget = quality.resolve_budget(
        parse(["--smoke", "--sed-model-defaults", "--sed-n-layers", "1"]), "smoke"
    )
    assert not preset.sed_model_defaults and budget.sed_model_defaults
    assert budget.sed_n_layers == 1  # named on the command line
    for name in ("sed_epochs", "sed_diffusion_epochs", "sed_batch_size", "sed_n_hidden"):
        assert getattr(budget, name) is None, name
        assert getattr(preset, name) is not None, name
    assert budget.dense_epochs == preset.dense_epochs  # the baselines keep the preset

    defaults = inspect.signature(sc_sed.SEDModel).parameters
    assert defaults["n_hidden"].default is None  # sizes come from the model's recipe
    ctx = quality.RunContext(adata, data, budget, {}, "cpu", 0, 8, False)
    model = quality.build_sed(ctx)
    params = model.init_params_["non_kwargs"]
    recipe = sc_sed.model.PRESETS[model.recipe_["preset"]]
    assert params["n_hidden"] == model.recipe_["n_hidden"] == recipe.n_hidden
    assert params["n_latent"] == model.recipe_["n_latent"] == recipe.n_latent
    assert params["n_layers"] == 1
    small = quality.build_sed(quality.RunContext(adata, data, preset, {}, "cpu", 0, 8, False))
    assert small.init_params_["non_kwargs"]["n_hidden"] == preset.sed_n_hidden

    calls = []
    monkeypatch.setattr(sc_sed.SEDModel, "train", lambda self, *a, **kw: calls.append((a, kw)))
    quality.train_sed_model(ctx, model)
    quality.train_sed_model(quality.RunContext(adata, data, preset, {}, "cpu", 0, 8, False), small)
    (args, kwargs), (preset_args, preset_kwargs) = calls
    assert args == (None, None) and "batch_size" not in kwargs
    assert preset_args == (preset.sed_epochs, preset.sed_diffusion_epochs)
    assert preset_kwargs["batch_size"] == preset.sed_batch_size
