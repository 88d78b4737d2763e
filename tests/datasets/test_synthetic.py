"""Seeded synthetic generators: documented shapes, reproducibility, zero padding."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from sc_sed.data._images import to_images
from sc_sed.data._interactions import to_interactions
from sc_sed.datasets import synthetic_counts, synthetic_interactions, synthetic_showers

GENERATORS = {
    "counts": (synthetic_counts, {"n_cells": 120, "n_genes": 60, "n_types": 3}),
    "showers": (synthetic_showers, {"n_events": 80, "grid": (8, 10)}),
    "interactions": (synthetic_interactions, {"n_users": 90, "n_items": 70}),
}


def assert_canonical(X) -> None:
    assert type(X) is sp.csr_matrix
    assert X.dtype == np.float32
    assert X.has_sorted_indices
    assert np.all(X.data != 0)


def assert_same(a: ad.AnnData, b: ad.AnnData) -> None:
    assert (a.X != b.X).nnz == 0
    pd.testing.assert_frame_equal(a.obs, b.obs)
    pd.testing.assert_frame_equal(a.var, b.var)


@pytest.mark.parametrize("name", GENERATORS)
def test_seeded_and_reproducible(name):
    make, kwargs = GENERATORS[name]
    a, b = make(**kwargs, seed=3), make(**kwargs, seed=3)
    assert_canonical(a.X)
    assert_same(a, b)
    assert (a.X != make(**kwargs, seed=4).X).nnz > 0
    assert np.diff(a.X.indptr).min() > 0  # no empty rows


@pytest.mark.parametrize("name", GENERATORS)
def test_padding_adds_only_zero_features(name):
    make, kwargs = GENERATORS[name]
    plain = make(**kwargs, seed=1)
    padded = make(**kwargs, seed=1, n_features=plain.n_vars + 37)
    assert padded.n_vars == plain.n_vars + 37
    assert_canonical(padded.X)
    assert (padded.X[:, : plain.n_vars] != plain.X).nnz == 0
    assert padded.X[:, plain.n_vars :].nnz == 0
    assert padded.var["padding"].sum() == 37
    assert not padded.var["padding"].iloc[: plain.n_vars].any()
    assert list(padded.var_names[: plain.n_vars]) == list(plain.var_names)
    assert padded.var_names.is_unique
    with pytest.raises(ValueError, match="n_features"):
        make(**kwargs, n_features=plain.n_vars - 1)


def test_synthetic_counts_defaults():
    adata = synthetic_counts()
    assert adata.shape == (500, 200)
    assert np.array_equal(adata.X.data, np.round(adata.X.data))
    assert (adata.layers["counts"] != adata.X).nnz == 0
    assert adata.obs["cell_type"].cat.categories.tolist() == [f"type_{t}" for t in range(4)]
    assert adata.obs["batch"].cat.categories.tolist() == ["batch_0", "batch_1"]
    assert 0.6 < 1 - adata.X.nnz / np.prod(adata.shape) < 0.9
    # marker genes are higher in their own type
    marker = adata.var_names[adata.var["marker_of"] == "type_0"]
    own = adata.obs["cell_type"] == "type_0"
    sub = adata[:, marker].X
    assert sub[own.to_numpy()].mean() > 2 * sub[~own.to_numpy()].mean()


def test_synthetic_counts_bad_args():
    with pytest.raises(ValueError, match="n_markers"):
        synthetic_counts(n_genes=10, n_types=4, n_markers=5)
    with pytest.raises(ValueError, match="n_cells"):
        synthetic_counts(n_cells=0)
    with pytest.raises(ValueError, match="dropout"):
        synthetic_counts(dropout=1.0)


def test_synthetic_showers_defaults():
    adata = synthetic_showers()
    assert adata.shape == (500, 256)
    assert {"row", "col", "eta", "phi"} <= set(adata.var.columns)
    assert adata.obs["particle"].cat.categories.tolist() == ["photon", "pion"]
    assert adata.X.data.min() >= 0.1
    assert 0.7 < 1 - adata.X.nnz / np.prod(adata.shape) < 0.95
    hits = np.diff(adata.X.indptr)
    pion = (adata.obs["particle"] == "pion").to_numpy()
    assert hits[pion].mean() > hits[~pion].mean()
    assert to_images(adata).shape == (500, 16, 16)


def test_synthetic_showers_padding_keeps_images():
    padded = synthetic_showers(n_events=20, grid=(4, 4), n_features=30)
    np.testing.assert_array_equal(
        to_images(padded), to_images(synthetic_showers(n_events=20, grid=(4, 4)))
    )
    with pytest.raises(ValueError, match="grid"):
        synthetic_showers(grid=(4,))


@pytest.mark.parametrize("implicit", [True, False])
def test_synthetic_interactions(implicit):
    adata = synthetic_interactions(implicit=implicit)
    assert adata.shape == (300, 500)
    assert isinstance(adata.obs["user_group"].dtype, pd.CategoricalDtype)
    values = set(np.unique(adata.X.data))
    assert values == {1.0} if implicit else values <= {1.0, 2.0, 3.0, 4.0, 5.0}
    df = to_interactions(adata)
    assert len(df) == adata.X.nnz
    assert df["user"].iloc[0] == "user_000"
