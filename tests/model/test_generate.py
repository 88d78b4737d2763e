import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

import sc_sed


def _check_valid(synth, adata):
    x = synth.X
    assert isinstance(x, sp.csr_matrix)
    assert x.dtype == np.float32
    assert list(synth.var_names) == list(adata.var_names)
    for r in range(x.shape[0]):
        cols = x.indices[x.indptr[r] : x.indptr[r + 1]]
        assert (np.diff(cols) > 0).all()
    assert (x.data >= 1).all() and np.array_equal(x.data, np.round(x.data))
    seen = np.asarray((adata.layers["counts"] > 0).sum(0)).ravel() > 0
    assert seen[x.indices].all()
    assert (synth.layers["counts"] != x).nnz == 0
    assert synth.obs["synthetic"].all()


def test_generate_contract(trained):
    model, adata = trained
    synth = model.generate(20, seed=1, progress_bar=False)
    _check_valid(synth, adata)
    assert synth.n_obs == 20
    for key in ("cell_type", "batch"):
        assert isinstance(synth.obs[key].dtype, pd.CategoricalDtype)
        assert list(synth.obs[key].cat.categories) == list(adata.obs[key].cat.categories)
    uns = synth.uns["sc_sed"]
    assert uns["seed"] == 1 and uns["sampler"] == "ddim" and uns["n_steps"] == 50
    assert uns["version"] == sc_sed.__version__
    assert uns["guidance_scale"] == {"cell_type": 1.0, "batch": 1.0}


def test_label_requests(trained):
    model, adata = trained
    cats = list(adata.obs["cell_type"].cat.categories)
    one = model.generate(6, labels=cats[1], n_steps=5, progress_bar=False)
    assert (one.obs["cell_type"] == cats[1]).all()
    lst = model.generate(None, labels=[cats[0], cats[2], cats[0]], n_steps=5, progress_bar=False)
    assert lst.obs["cell_type"].tolist() == [cats[0], cats[2], cats[0]]
    dct = model.generate(None, labels={cats[0]: 2, cats[1]: 3}, n_steps=5, progress_bar=False)
    assert dct.obs["cell_type"].value_counts()[cats[1]] == 3 and dct.n_obs == 5
    cov = model.generate(
        4, covariates={"batch": adata.obs["batch"].cat.categories[0]}, n_steps=5, progress_bar=False
    )
    assert (cov.obs["batch"] == adata.obs["batch"].cat.categories[0]).all()


def test_seed_reproducibility(trained):
    model, _ = trained
    kw = {"n_steps": 8, "progress_bar": False, "batch_size": 7}
    a = model.generate(15, seed=3, **kw)
    b = model.generate(15, seed=3, **kw)
    c = model.generate(15, seed=4, **kw)
    assert (a.X != b.X).nnz == 0 and a.obs.equals(b.obs)
    assert (a.X != c.X).nnz > 0
    ddpm = model.generate(15, seed=3, sampler="ddpm", **kw)
    assert (ddpm.X != model.generate(15, seed=3, sampler="ddpm", **kw).X).nnz == 0


def test_generate_bad_inputs(trained):
    model, _ = trained
    with pytest.raises(ValueError, match="Unknown 'cell_type'"):
        model.generate(3, labels="not-a-type")
    with pytest.raises(ValueError, match="n_cells"):
        model.generate(0)
    with pytest.raises(ValueError, match="not conditioned on"):
        model.generate(3, guidance_scale={"donor": 2.0})
    with pytest.raises(ValueError, match="registered covariates"):
        model.generate(3, covariates={"donor": "x"})
    with pytest.raises(ValueError, match="sampler"):
        model.generate(3, sampler="euler")


def test_guidance_zero_equals_unconditional(trained):
    model, _ = trained
    module = model.module.diffusion
    z = torch.randn(5, module.n_latent)
    logsnr = torch.zeros(5)
    sc = torch.zeros_like(z)
    cond = torch.tensor([[0, 1], [1, 0], [2, 1], [0, 0], [1, 1]])
    unguided = module.ema_denoiser(z, logsnr, sc, module.ema_denoiser.null_condition(5, "cpu"))
    torch.testing.assert_close(module.guided_x0(z, logsnr, sc, cond, [0.0, 0.0]), unguided)
    conditional = module.ema_denoiser(z, logsnr, sc, cond)
    torch.testing.assert_close(module.guided_x0(z, logsnr, sc, cond, [1.0, 1.0]), conditional)
    torch.testing.assert_close(
        module.guided_x0(z, logsnr, sc, cond, [1.0, 1.0 + 1e-9]), conditional
    )


def test_reconstruct_contract(trained):
    model, adata = trained
    rec = model.reconstruct(indices=np.arange(10), seed=0)
    assert rec.n_obs == 10 and list(rec.obs_names) == list(adata.obs_names[:10])
    _check_valid(rec, adata)
    again = model.reconstruct(indices=np.arange(10), seed=0)
    assert (rec.X != again.X).nnz == 0


def test_save_load_round_trip(trained, tmp_path):
    model, adata = trained
    model.save(tmp_path / "m", overwrite=True)
    kw = {"n_steps": 6, "progress_bar": False, "seed": 5}
    ref = model.generate(12, **kw)
    with_data = sc_sed.SEDModel.load(tmp_path / "m", adata=adata)
    without = sc_sed.SEDModel.load(tmp_path / "m")
    for loaded in (with_data, without):
        out = loaded.generate(12, **kw)
        assert (out.X != ref.X).nnz == 0 and out.obs.equals(ref.obs)
    np.testing.assert_allclose(
        with_data.get_latent_representation(),
        model.get_latent_representation(),
        rtol=1e-5,
        atol=1e-6,
    )
    rec = with_data.reconstruct(indices=np.arange(5), seed=2)
    assert (rec.X != model.reconstruct(indices=np.arange(5), seed=2).X).nnz == 0


def test_history_has_both_stages(trained):
    model, _ = trained
    assert "train_loss" in model.history and "train_diffusion_loss" in model.history


def test_generated_anndata_keeps_training_var_annotations(trained, tmp_path):
    model, adata = trained
    synth = model.generate(3, n_steps=3, progress_bar=False)
    assert list(synth.var.columns) == list(adata.var.columns)
    assert synth.uns["sc_sed_dataset"] == adata.uns["sc_sed_dataset"]
    model.save(tmp_path / "m", overwrite=True)
    loaded = sc_sed.SEDModel.load(tmp_path / "m")
    assert list(loaded.generate(3, n_steps=3, progress_bar=False).var.columns) == list(
        adata.var.columns
    )


def test_generated_anndata_writes_with_string_dtype_training_var(trained, tmp_path, monkeypatch):
    # pandas 3 gives string dtype to var read or built from strings; anndata 0.12 refuses to
    # write it, so generated data must not inherit it.
    model, adata = trained
    var = adata.var.copy()
    var.index = pd.Index(var.index.astype(str), dtype="string")
    var["symbol"] = pd.array([f"S{i}" for i in range(var.shape[0])], dtype="string")
    var["kind"] = pd.Categorical(["a", "b"] * (var.shape[0] // 2)).rename_categories(
        pd.Index(["a", "b"], dtype="string")
    )
    monkeypatch.setattr(model, "training_var_", var)
    synth = model.generate(3, n_steps=3, progress_bar=False)
    synth.write_h5ad(tmp_path / "synth.h5ad")
    back = ad.read_h5ad(tmp_path / "synth.h5ad")
    assert list(back.var_names) == list(var.index)
    assert list(back.var["symbol"]) == list(var["symbol"])
    assert list(back.var["kind"]) == list(var["kind"])
    assert var.index.dtype == "string"  # the model's copy was not rewritten in place
