from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from sc_sed.baselines import ScVIPrior
from sc_sed.baselines._scvi import negative_binomial

TRAIN = {"max_epochs": 2, "progress_bar": False, "enable_model_summary": False}


@pytest.fixture(scope="module")
def model(adata):
    m = ScVIPrior(adata, layer="counts", labels_key="cell_type", n_latent=4, n_hidden=32)
    m.train(**TRAIN)
    return m


def test_output_like_sed_generate(model, adata):
    out = model.generate(25, seed=0, progress_bar=False)
    assert isinstance(out.X, sp.csr_matrix) and out.X.dtype == np.float32
    assert out.shape == (25, adata.n_vars) and list(out.var_names) == list(adata.var_names)
    assert (out.layers["counts"] != out.X).nnz == 0
    assert np.array_equal(out.X.data, np.round(out.X.data)) and np.all(out.X.data >= 1)
    assert isinstance(out.obs["cell_type"].dtype, pd.CategoricalDtype)
    assert list(out.obs["cell_type"].cat.categories) == list(adata.obs["cell_type"].cat.categories)
    assert out.obs["synthetic"].all()
    assert out.uns["sc_sed"]["method"] == "scvi_prior" and out.uns["sc_sed"]["seed"] == 0


def test_labels_and_seeds(model):
    out = model.generate(None, {"type_0": 4, "type_1": 1}, seed=0, progress_bar=False)
    assert out.obs["cell_type"].value_counts().to_dict() == {"type_0": 4, "type_1": 1, "type_2": 0}
    a = model.generate(10, "type_2", seed=5, progress_bar=False)
    assert (a.obs["cell_type"] == "type_2").all()
    b = model.generate(10, "type_2", seed=5, progress_bar=False)
    c = model.generate(10, "type_2", seed=6, progress_bar=False)
    np.testing.assert_array_equal(a.X.toarray(), b.X.toarray())
    assert not np.array_equal(a.X.toarray(), c.X.toarray())


@pytest.mark.parametrize(
    ("kwargs", "err"),
    [
        ({"n_cells": 3, "labels": "unknown"}, ValueError),
        ({"n_cells": 0}, ValueError),
        ({"n_cells": None}, ValueError),
    ],
)
def test_bad_generate_arguments(model, kwargs, err):
    with pytest.raises(err):
        model.generate(**kwargs, progress_bar=False)


def test_unconditional_decoder_and_order_errors(adata):
    before = adata.copy()
    m = ScVIPrior(
        adata, labels_key="cell_type", condition_on_labels=False, gene_likelihood="zinb", n_latent=3
    )
    with pytest.raises(RuntimeError, match="train"):
        m.generate(5)
    m.train(**TRAIN)
    out = m.generate(8, "type_0", seed=0, progress_bar=False)
    assert (out.obs["cell_type"] == "type_0").all() and "counts" not in out.layers
    assert out.uns["sc_sed"]["condition_on_labels"] is False
    assert list(adata.obs.columns) == list(before.obs.columns) and set(adata.uns) == set(before.uns)
    with pytest.raises(ValueError, match="gene_likelihood"):
        ScVIPrior(adata, gene_likelihood="poisson")


def test_negative_binomial_moments_and_seed():
    mu = torch.full((20000, 2), 5.0)
    theta = torch.tensor([2.0, 50.0])
    x = negative_binomial(mu, theta, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(x.mean(0).numpy(), [5.0, 5.0], rtol=0.05)
    np.testing.assert_allclose(x.var(0).numpy(), (5 + 25 / theta).numpy(), rtol=0.1)
    y = negative_binomial(mu, theta, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, y)
    z = negative_binomial(
        mu, theta, zi_probs=torch.full_like(mu, 0.5), generator=torch.Generator().manual_seed(0)
    )
    assert (z == 0).float().mean() > (x == 0).float().mean() + 0.3
