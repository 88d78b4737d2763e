"""The encoder's principal components (fitted once before training) and the value head's start."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import sc_sed
from sc_sed.data import sparse_pca
from sc_sed.nn import value_locations

from .conftest import FIT, TINY, tiny_counts


def _lognorm(x: sp.csr_matrix) -> sp.csr_matrix:
    x = sp.csr_matrix(x, dtype=np.float64)
    total = np.asarray(x.sum(1)).ravel()
    out = sp.diags(1e4 / np.where(total > 0, total, 1)) @ x
    out.data = np.log1p(out.data)
    return sp.csr_matrix(out)


def test_components_are_fitted_on_the_registered_rows_once(tmp_path):
    adata = tiny_counts()
    sc_sed.SEDModel.setup_anndata(adata, layer="counts")
    model = sc_sed.SEDModel(adata, n_encoder_pcs=5, **TINY)
    spectral = model.module.encoder.spectral
    assert spectral.n_components == 5 and not bool(spectral.fitted)
    model.train_autoencoder(1, batch_size=32, **FIT)
    assert bool(spectral.fitted)
    loadings, mean, sd = sparse_pca(_lognorm(adata.layers["counts"]), 5, seed=0)
    np.testing.assert_allclose(spectral.loadings.numpy(), loadings, atol=1e-5)
    np.testing.assert_allclose(spectral.scale.numpy(), sd, rtol=1e-5)
    np.testing.assert_allclose(spectral.center.numpy(), mean @ loadings, atol=1e-4)
    before = spectral.loadings.clone()
    model.train_autoencoder(1, batch_size=32, **FIT)  # continued training keeps them
    assert torch.equal(spectral.loadings, before)
    model.save(tmp_path / "m")
    loaded = sc_sed.SEDModel.load(tmp_path / "m", adata=adata)
    assert bool(loaded.module.encoder.spectral.fitted)
    assert torch.equal(loaded.module.encoder.spectral.loadings, before)
    np.testing.assert_allclose(
        loaded.get_latent_representation(), model.get_latent_representation(), atol=1e-6
    )


def test_continuous_data_use_log1p_and_no_components_can_be_asked_for():
    adata = tiny_counts()
    adata.layers["counts"] = adata.layers["counts"] * 0.37  # non-integer: log-normal values
    sc_sed.SEDModel.setup_anndata(adata, layer="counts")
    model = sc_sed.SEDModel(adata, n_encoder_pcs=3, **TINY)
    assert model.module.encoder.spectral.transform == "log1p"
    assert sc_sed.SEDModel(adata, n_encoder_pcs=0, **TINY).module.encoder.spectral is None
    few = adata[:4].copy()
    sc_sed.SEDModel.setup_anndata(few, layer="counts")
    small = sc_sed.SEDModel(few, n_encoder_pcs=30, **TINY)
    assert small.module.encoder.spectral.n_components == 3  # at most rows - 1


@pytest.mark.parametrize("bad", [-1, 2.5, True])
def test_bad_n_encoder_pcs_is_refused(bad):
    adata = tiny_counts()
    sc_sed.SEDModel.setup_anndata(adata, layer="counts")
    with pytest.raises(ValueError, match="n_encoder_pcs must be a non-negative integer"):
        sc_sed.SEDModel(adata, n_encoder_pcs=bad, **TINY)


def test_value_head_starts_at_each_features_mean_count():
    adata = tiny_counts()
    sc_sed.SEDModel.setup_anndata(adata, layer="counts")
    model = sc_sed.SEDModel(adata, value_likelihood="ztpoisson", **TINY)
    x = sp.csc_matrix(adata.layers["counts"])
    n = np.diff(x.indptr)
    sums = np.asarray(x.sum(0)).ravel()
    want = value_locations("ztpoisson", torch.tensor(n), torch.tensor(sums), torch.zeros(len(n)))
    head = model.module.decoder.value_head
    torch.testing.assert_close(head.feature_bias[:, 0] + head.mlp[-1].bias[0], want)
    assert head.latent_term == "tied" and head.context_weight.shape == (adata.n_vars,)
    free = sc_sed.SEDModel(adata, value_latent_term="free", **TINY).module.decoder.value_head
    assert free.context_weight.shape == (adata.n_vars, 128)  # the default context width
    off = sc_sed.SEDModel(adata, value_latent_term="none", **TINY).module.decoder.value_head
    assert off.feature_bias is None and off.context_weight is None
