import numpy as np
import pytest
import scipy.sparse as sp

import sc_sed

from .conftest import TINY, tiny_counts


def test_setup_records_conditions_and_stats():
    adata = tiny_counts()
    sc_sed.SEDModel.setup_anndata(adata, layer="counts", labels_key="cell_type")
    model = sc_sed.SEDModel(adata, **TINY)
    assert model.value_likelihood_ == "ztnb"
    assert model.index_head_ == "flat"
    assert model.max_nonzero_ == int(np.diff(adata.layers["counts"].indptr).max())
    assert [c.obs_key for c in model._conditions] == ["cell_type"]
    assert "index_head='flat'" in model._model_summary_string


def test_dense_input_accepted_and_not_modified():
    adata = tiny_counts()
    adata.X = adata.layers["counts"].toarray()
    before = adata.X.copy()
    sc_sed.SEDModel.setup_anndata(adata)
    model = sc_sed.SEDModel(adata, **TINY)
    assert isinstance(adata.X, np.ndarray)
    np.testing.assert_array_equal(adata.X, before)
    model.train_autoencoder(max_epochs=1, batch_size=32, enable_progress_bar=False)
    assert model.get_latent_representation().shape == (adata.n_obs, TINY["n_latent"])


def test_continuous_data_pick_lognormal():
    adata = tiny_counts()
    adata.X = adata.layers["counts"] * 0.37
    sc_sed.SEDModel.setup_anndata(adata)
    assert sc_sed.SEDModel(adata, **TINY).value_likelihood_ == "lognormal"


def test_negative_values_raise_unless_gaussian():
    adata = tiny_counts()
    x = adata.layers["counts"].copy()
    x.data[0] = -2.0
    adata.X = x
    sc_sed.SEDModel.setup_anndata(adata)
    with pytest.raises(ValueError, match="negative values"):
        sc_sed.SEDModel(adata, **TINY)
    assert (
        sc_sed.SEDModel(adata, value_likelihood="gaussian", **TINY).value_likelihood_ == "gaussian"
    )


def test_counts_likelihood_on_non_integers_raises():
    adata = tiny_counts()
    adata.X = adata.layers["counts"] * 0.5
    sc_sed.SEDModel.setup_anndata(adata)
    with pytest.raises(ValueError, match="integer counts"):
        sc_sed.SEDModel(adata, value_likelihood="ztnb", **TINY)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_values_raise(bad):
    adata = tiny_counts()
    x = adata.layers["counts"].copy()
    x.data[3] = bad
    adata.X = x
    with pytest.raises(ValueError, match="NaN or infinite"):
        sc_sed.SEDModel.setup_anndata(adata)
    assert np.isnan(adata.X.data[3]) or np.isinf(adata.X.data[3])  # untouched


def test_non_numeric_raises():
    adata = tiny_counts()
    adata.X = adata.layers["counts"].toarray().astype(str).astype(object)
    with pytest.raises(TypeError, match="non-numeric"):
        sc_sed.SEDModel.setup_anndata(adata)


def test_unknown_layer_and_keys_raise():
    adata = tiny_counts()
    with pytest.raises(KeyError, match="Layer 'raw' not found"):
        sc_sed.SEDModel.setup_anndata(adata, layer="raw")
    with pytest.raises(KeyError, match="labels_key='celltype'"):
        sc_sed.SEDModel.setup_anndata(adata, labels_key="celltype")
    with pytest.raises(KeyError, match="categorical_covariate_keys='donor'"):
        sc_sed.SEDModel.setup_anndata(adata, categorical_covariate_keys=["donor"])


def test_empty_anndata_raises():
    adata = tiny_counts()[:0].copy()
    with pytest.raises(ValueError, match="empty"):
        sc_sed.SEDModel.setup_anndata(adata)


def test_empty_rows_allowed():
    adata = tiny_counts()
    x = adata.layers["counts"].tolil()
    x[0] = 0
    adata.X = sp.csr_matrix(x)
    sc_sed.SEDModel.setup_anndata(adata)
    model = sc_sed.SEDModel(adata, **TINY)
    model.train_autoencoder(max_epochs=1, batch_size=64, enable_progress_bar=False)
    assert np.isfinite(model.get_latent_representation(indices=[0])).all()


def test_long_rows_rule():
    adata = tiny_counts()
    sc_sed.SEDModel.setup_anndata(adata, layer="counts")
    model = sc_sed.SEDModel(adata, max_nonzero=3, **TINY)
    with pytest.raises(ValueError, match="max_nonzero=3"):
        model.train_autoencoder(max_epochs=1, enable_progress_bar=False)
    model = sc_sed.SEDModel(adata, max_nonzero=3, on_long_rows="truncate", **TINY)
    model.train_autoencoder(max_epochs=1, enable_progress_bar=False)
    rec = model.reconstruct(indices=np.arange(5))
    assert np.diff(rec.X.indptr).max() <= 3


def test_methods_before_training_raise():
    adata = tiny_counts()
    sc_sed.SEDModel.setup_anndata(adata, layer="counts", labels_key="cell_type")
    model = sc_sed.SEDModel(adata, **TINY)
    for call in (model.get_latent_representation, model.reconstruct, lambda: model.generate(5)):
        with pytest.raises(RuntimeError, match="before the"):
            call()
    with pytest.raises(RuntimeError, match="autoencoder"):
        model.train_diffusion(max_epochs=1)
