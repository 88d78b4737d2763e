from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from sklearn.decomposition import PCA

import sc_sed.tl
from sc_sed.tl._preprocess import _normalize


@pytest.fixture(scope="module")
def emb(real, shifted):
    return sc_sed.tl.co_embed(real, shifted, n_pcs=10)


def test_layout(emb, real, shifted):
    assert emb.n_obs == real.n_obs + shifted.n_obs
    assert list(emb.var_names) == list(real.var_names)
    assert isinstance(emb.obs["origin"].dtype, pd.CategoricalDtype)
    assert list(emb.obs["origin"].cat.categories) == ["real", "synthetic"]
    assert (emb.obs["origin"] == "real").sum() == real.n_obs
    assert (emb.obs["origin"].iloc[: real.n_obs] == "real").all()
    assert isinstance(emb.obs["cell_type"].dtype, pd.CategoricalDtype)
    assert emb.obsm["X_pca"].shape == (emb.n_obs, 10)
    assert emb.obsm["X_umap"].shape == (emb.n_obs, 2)
    assert np.isfinite(emb.obsm["X_umap"]).all()
    assert "connectivities" in emb.obsp
    assert (emb.layers["counts"] != sparse.vstack([real.X, shifted.X])).nnz == 0
    assert emb.obs_names.is_unique


def test_pca_is_fitted_on_real_rows_only(emb, real):
    expected = PCA(n_components=10, svd_solver="arpack", random_state=0).fit(
        _normalize(real.X, normalize=True)
    )
    got = emb.varm["PCs"].T
    signs = np.sign((got * expected.components_).sum(axis=1))
    np.testing.assert_allclose(got * signs[:, None], expected.components_, atol=1e-8)
    real_pcs = emb.obsm["X_pca"][: real.n_obs]
    np.testing.assert_allclose(
        real_pcs * signs, expected.transform(_normalize(real.X, normalize=True)), atol=1e-8
    )


def test_real_coordinates_do_not_depend_on_synth(emb, real, same):
    other = sc_sed.tl.co_embed(real, same, n_pcs=10)
    n = real.n_obs
    np.testing.assert_allclose(other.obsm["X_pca"][:n], emb.obsm["X_pca"][:n])
    np.testing.assert_allclose(other.varm["PCs"], emb.varm["PCs"])


def test_inputs_not_modified_and_subsampling(real, shifted):
    before = (real.obs.copy(), real.X.copy(), dict(real.uns), set(real.obsm))
    out = sc_sed.tl.co_embed(real, shifted, max_cells=50, n_pcs=5, n_neighbors=5, n_hvg=40)
    assert out.n_obs == 100
    assert out.uns["sc_sed"]["co_embed"]["max_cells"] == 50
    assert np.count_nonzero(out.varm["PCs"].any(axis=1)) == 40
    pd.testing.assert_frame_equal(real.obs, before[0])
    assert (real.X != before[1]).nnz == 0
    assert dict(real.uns) == before[2] and set(real.obsm) == before[3]


def test_overlapping_obs_names_are_suffixed(real):
    out = sc_sed.tl.co_embed(real[:40].copy(), real[:40].copy(), n_pcs=5, n_neighbors=5)
    assert out.obs_names.is_unique
    assert out.obs_names[0].endswith("-real") and out.obs_names[-1].endswith("-synthetic")


def test_bad_input(real, shifted):
    with pytest.raises(ValueError, match="align=True"):
        sc_sed.tl.co_embed(real, shifted[:, 5:].copy())
    with pytest.raises(ValueError, match="`synth` is empty"):
        sc_sed.tl.co_embed(real, shifted[:0].copy())
