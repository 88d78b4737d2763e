"""Seeded synthetic scRNA-like counts: cell types with marker genes, batches, NB noise, dropout."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData

from sc_sed.data import canonical_csr

from ._utils import check_positive_ints, pad_features, resolve_n_features


def _expression_profiles(
    rng: np.random.Generator, n_genes: int, n_types: int, n_markers: int, marker_fold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Return per-type gene proportions ``(n_types, n_genes)`` and each gene's marker type (-1: none)."""
    base = rng.lognormal(mean=0.0, sigma=2.0, size=n_genes)
    marker_type = np.full(n_genes, -1)
    markers = rng.permutation(n_genes)[: n_types * n_markers].reshape(n_types, n_markers)
    profiles = np.tile(base, (n_types, 1))
    for t in range(n_types):
        marker_type[markers[t]] = t
        profiles[t, markers[t]] *= marker_fold
    return profiles / profiles.sum(axis=1, keepdims=True), marker_type


def _sample_counts(
    rng: np.random.Generator, mean: np.ndarray, dispersion: float, dropout: float
) -> np.ndarray:
    """Gamma-Poisson (negative binomial) counts, then zero-inflation with probability ``dropout``."""
    rate = rng.gamma(shape=dispersion, scale=mean / dispersion)
    counts = rng.poisson(rate)
    counts[rng.random(counts.shape) < dropout] = 0
    return counts


def _no_empty_rows(
    counts: np.ndarray, cell_type: np.ndarray, marker_type: np.ndarray
) -> np.ndarray:
    """Give every all-zero cell one count in its type's first marker gene."""
    counts = counts.copy()
    empty = np.flatnonzero(counts.sum(axis=1) == 0)
    for cell in empty:
        counts[cell, np.flatnonzero(marker_type == cell_type[cell])[0]] = 1
    return counts


def synthetic_counts(
    n_cells: int = 500,
    n_genes: int = 200,
    n_types: int = 4,
    *,
    n_features: int | None = None,
    seed: int = 0,
    n_batches: int = 2,
    n_markers: int = 10,
    marker_fold: float = 8.0,
    library_size: float = 200.0,
    dispersion: float = 2.0,
    dropout: float = 0.15,
) -> AnnData:
    """Seeded scRNA-like UMI counts with cell types, marker genes and batches.

    Each cell type up-regulates its own ``n_markers`` genes ``marker_fold``-fold over a shared
    log-normal baseline; each batch scales genes by a mild log-normal factor; library sizes are
    log-normal around ``library_size``; counts are negative binomial (gamma-Poisson with shape
    ``dispersion``) with extra zeros at rate ``dropout``. Every cell has at least one count.
    With defaults: 500 cells × 200 genes, about 75% zeros. Source: generated here; licence
    BSD-3-Clause (as sc_sed). The same arguments give an identical AnnData.

    Parameters
    ----------
    n_cells, n_genes, n_types
        Numbers of cells, expressed genes and cell types.
    n_features
        Total number of features, ``>= n_genes``: appends ``n_features - n_genes`` all-zero
        features ``"pad_*"`` (``var["padding"]``), keeping the non-zeros identical — for scaling
        studies at a fixed number of non-zeros.
    seed
        Seed of the NumPy generator.
    n_batches
        Number of batches (cells are assigned uniformly at random).
    n_markers
        Marker genes per cell type (``n_types * n_markers <= n_genes``).
    marker_fold
        Fold change of a marker gene in its cell type.
    library_size
        Median total counts per cell before dropout.
    dispersion
        Negative binomial inverse dispersion (smaller is noisier).
    dropout
        Probability, in ``[0, 1)``, that a count is replaced by a zero.

    Returns
    -------
    AnnData with integer counts as :class:`scipy.sparse.csr_matrix` float32 in ``X`` and
    ``layers["counts"]``; ``obs["cell_type"]`` (``"type_0"``, …) and ``obs["batch"]``
    (``"batch_0"``, …) categorical; ``var["marker_of"]`` the cell type a gene marks
    (``"none"`` otherwise); ``uns["sc_sed_dataset"]`` the generator arguments.
    """
    check_positive_ints(
        n_cells=n_cells, n_genes=n_genes, n_types=n_types, n_batches=n_batches, n_markers=n_markers
    )
    total = resolve_n_features(n_features, n_genes, what="genes")
    if n_types * n_markers > n_genes:
        msg = f"`n_types * n_markers` ({n_types * n_markers}) exceeds `n_genes` ({n_genes}); lower `n_markers`."
        raise ValueError(msg)
    if not (0 <= dropout < 1) or dispersion <= 0 or library_size <= 0 or marker_fold <= 0:
        msg = "`dropout` must lie in [0, 1) and `dispersion`, `library_size`, `marker_fold` be > 0."
        raise ValueError(msg)
    rng = np.random.default_rng(seed)
    profiles, marker_type = _expression_profiles(rng, n_genes, n_types, n_markers, marker_fold)
    batch_effect = np.vstack(
        [np.ones(n_genes), rng.lognormal(0.0, 0.2, size=(n_batches - 1, n_genes))]
    )
    cell_type = rng.integers(n_types, size=n_cells)
    batch = rng.integers(n_batches, size=n_cells)
    library = rng.lognormal(np.log(library_size), 0.3, size=n_cells)
    mean = library[:, None] * profiles[cell_type] * batch_effect[batch]
    counts = _no_empty_rows(_sample_counts(rng, mean, dispersion, dropout), cell_type, marker_type)
    adata = _counts_adata(counts, cell_type, batch, marker_type, n_types, n_batches)
    adata.uns["sc_sed_dataset"] = {
        "name": "synthetic_counts",
        "seed": int(seed),
        "n_features": total,
    }
    return pad_features(adata, total, fill={"marker_of": "none"})


def _counts_adata(
    counts: np.ndarray,
    cell_type: np.ndarray,
    batch: np.ndarray,
    marker_type: np.ndarray,
    n_types: int,
    n_batches: int,
) -> AnnData:
    types = [f"type_{t}" for t in range(n_types)]
    batches = [f"batch_{b}" for b in range(n_batches)]
    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical.from_codes(cell_type, categories=types),
            "batch": pd.Categorical.from_codes(batch, categories=batches),
        },
        index=[f"cell_{i:0{len(str(len(counts) - 1))}d}" for i in range(len(counts))],
    )
    labels = np.where(marker_type >= 0, marker_type, n_types)
    var = pd.DataFrame(
        {"marker_of": pd.Categorical.from_codes(labels, categories=[*types, "none"])},
        index=[f"gene_{g:0{len(str(counts.shape[1] - 1))}d}" for g in range(counts.shape[1])],
    )
    X = canonical_csr(counts, dtype=np.float32)
    return AnnData(X=X, obs=obs, var=var, layers={"counts": X.copy()})
