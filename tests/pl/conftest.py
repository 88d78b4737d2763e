"""Small count data for the plot tests (CSR and dense), and figure clean-up."""

from __future__ import annotations

import anndata as ad
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from scipy import sparse


def _counts(n_cells: int, n_genes: int, *, seed: int, prefix: str, dense: bool) -> ad.AnnData:
    profiles = np.random.default_rng(42)
    base = profiles.normal(-0.5, 1.2, n_genes)
    rng = np.random.default_rng(seed)
    types = rng.integers(3, size=n_cells)
    effects = profiles.normal(0, 1.5, (3, n_genes)) * (profiles.random((3, n_genes)) < 0.2)
    counts = rng.poisson(np.exp(base + effects[types])).astype(np.float32)
    obs = pd.DataFrame(
        {"cell_type": pd.Categorical([f"t{t}" for t in types]), "score": rng.normal(size=n_cells)},
        index=[f"{prefix}{i}" for i in range(n_cells)],
    )
    X = counts if dense else sparse.csr_matrix(counts)
    return ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=[f"g{j}" for j in range(n_genes)]))


@pytest.fixture(params=["csr", "dense"])
def pair(request):
    dense = request.param == "dense"
    return (
        _counts(120, 60, seed=1, prefix="r", dense=dense),
        _counts(100, 60, seed=2, prefix="s", dense=dense),
    )


@pytest.fixture(scope="session")
def co_embedded():
    import sc_sed.tl

    real = _counts(120, 60, seed=1, prefix="r", dense=False)
    synth = _counts(100, 60, seed=2, prefix="s", dense=False)
    return sc_sed.tl.co_embed(real, synth, n_pcs=10, n_neighbors=10)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")
