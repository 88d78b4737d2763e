"""Small negative-binomial count data with cell types and dropout, for the tool tests."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import sparse


def make_counts(
    n_cells: int = 300,
    n_genes: int = 120,
    *,
    n_types: int = 3,
    seed: int = 0,
    shift: float = 0.0,
    prefix: str = "cell",
    profile_seed: int = 42,
) -> ad.AnnData:
    """NB counts (CSR) from ``n_types`` fixed type profiles; ``shift`` perturbs them (log scale)."""
    profiles = np.random.default_rng(profile_seed)
    base = profiles.normal(-0.5, 1.2, n_genes)
    effects = profiles.normal(0, 1.5, (n_types, n_genes)) * (
        profiles.random((n_types, n_genes)) < 0.15
    )
    rng = np.random.default_rng(seed)
    types = rng.integers(n_types, size=n_cells)
    log_mu = base + effects[types] + shift * np.linspace(-2, 2, n_genes)
    library = rng.lognormal(0, 0.3, n_cells)[:, None]
    lam = rng.gamma(2.0, np.exp(log_mu) * library / 2.0)
    counts = rng.poisson(lam) * (rng.random((n_cells, n_genes)) > 0.2)  # extra dropout
    obs = pd.DataFrame(
        {"cell_type": pd.Categorical([f"type{t}" for t in types])},
        index=[f"{prefix}{i}" for i in range(n_cells)],
    )
    var = pd.DataFrame(index=[f"gene{j}" for j in range(n_genes)])
    return ad.AnnData(X=sparse.csr_matrix(counts.astype(np.float32)), obs=obs, var=var)


@pytest.fixture
def counts_factory():
    return make_counts


@pytest.fixture(scope="module")
def real() -> ad.AnnData:
    return make_counts(300, seed=1, prefix="real")


@pytest.fixture(scope="module")
def same() -> ad.AnnData:
    """A second sample of the real distribution (different rows)."""
    return make_counts(300, seed=2, prefix="same")


@pytest.fixture(scope="module")
def shifted() -> ad.AnnData:
    return make_counts(300, seed=3, shift=1.0, prefix="shift")
