"""Peripheral blood mononuclear cell (PBMC) count matrices from scanpy's datasets."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp
from anndata import AnnData

from sc_sed.data import canonical_csr

logger = logging.getLogger(__name__)

#: Largest allowed distance from an integer before rounding recovered counts (observed: ~0.08).
#: A distance to the *nearest* integer never exceeds 0.5, so 0.5 itself would never fire.
_MAX_ROUNDING = 0.25


def _counts_anndata(
    counts: sp.csr_matrix, obs: pd.DataFrame, var: pd.DataFrame, *, name: str
) -> AnnData:
    """Wrap integer counts as float32 CSR in ``X`` and ``layers["counts"]``; no empty rows."""
    X = canonical_csr(counts, dtype=np.float32)
    empty = np.flatnonzero(np.diff(X.indptr) == 0)
    if empty.size:
        msg = f"{name}: {empty.size} cells have no counts (e.g. {obs.index[empty[:3]].tolist()})."
        raise RuntimeError(msg)
    adata = AnnData(X=X, obs=obs, var=var)
    adata.layers["counts"] = X.copy()
    adata.uns["sc_sed_dataset"] = {"name": name}
    return adata


def pbmc68k_counts() -> AnnData:
    """Integer UMI counts of 700 PBMCs recovered from scanpy's bundled PBMC 68k reduced (offline).

    ``scanpy.datasets.pbmc68k_reduced()`` stores ``log1p`` of counts normalised to 10,000 per
    cell in ``raw.X`` and the original library size in ``obs["n_counts"]``; the counts are
    ``round(expm1(raw.X) * n_counts / 1e4)`` (the largest distance from an integer before
    rounding is about 0.08; 0.25 or more raises).

    Shape 700 cells × 765 genes, about 67% zeros. Source: 10x Genomics Fresh 68k PBMCs
    (Zheng et al. 2017, *Nat. Commun.* 8:14049), subsampled and bundled with scanpy. Licence:
    the 10x Genomics data are CC BY 4.0; scanpy is BSD-3-Clause.

    Returns
    -------
    AnnData with the counts as :class:`scipy.sparse.csr_matrix` float32 in ``X`` and
    ``layers["counts"]``; ``obs`` keeps every bundled column (``bulk_labels`` categorical,
    ``louvain``, ``phase``, ``n_counts``, …), ``obsm`` the bundled ``X_pca``/``X_umap``;
    ``var_names`` are the genes of ``raw``.
    """
    bundled = sc.datasets.pbmc68k_reduced()
    raw = bundled.raw
    normalised = sp.csr_matrix(raw.X, dtype=np.float64)
    library = bundled.obs["n_counts"].to_numpy(dtype=np.float64)
    counts = sp.diags(library / 1e4) @ normalised.expm1()
    deviation = float(np.abs(counts.data - np.round(counts.data)).max()) if counts.nnz else 0.0
    if deviation >= _MAX_ROUNDING:
        msg = f"Recovered PBMC 68k counts are not integral (max deviation {deviation:.3f}); the bundled data changed."
        raise RuntimeError(msg)
    logger.debug("pbmc68k_counts: max deviation from integers %.4f", deviation)
    counts.data = np.round(counts.data)
    adata = _counts_anndata(
        counts.tocsr(),
        bundled.obs.copy(),
        pd.DataFrame(index=raw.var_names.copy()),
        name="pbmc68k_counts",
    )
    for key in ("X_pca", "X_umap"):
        if key in bundled.obsm:
            adata.obsm[key] = np.asarray(bundled.obsm[key]).copy()
    return adata


def pbmc3k_counts(*, min_cells: int = 3) -> AnnData:
    """Raw UMI counts of 2,700 PBMCs from 10x Genomics (downloads about 6 MB on first use).

    Calls ``scanpy.datasets.pbmc3k()``, which caches the file in
    ``scanpy.settings.datasetdir``. Needs network access the first time; offline, use
    :func:`pbmc68k_counts` or :func:`synthetic_counts`.

    Shape 2,700 cells × 13,714 genes with the default ``min_cells=3`` (32,738 without
    filtering), about 97.4% zeros. Source: 10x Genomics "3k PBMCs from a Healthy Donor"
    (v1 chemistry). Licence: CC BY 4.0.

    Parameters
    ----------
    min_cells
        Keep genes detected in at least this many cells (``0`` keeps all).

    Returns
    -------
    AnnData with integer counts as :class:`scipy.sparse.csr_matrix` float32 in ``X`` and
    ``layers["counts"]``; ``var["gene_ids"]`` holds the Ensembl ids.
    """
    if min_cells < 0:
        msg = f"`min_cells` must be >= 0, got {min_cells}."
        raise ValueError(msg)
    try:
        loaded = sc.datasets.pbmc3k()
    except (OSError, ImportError) as err:
        msg = (
            f"Could not download PBMC 3k ({type(err).__name__}: {err}). It needs network access "
            "on first use; offline, use `sc_sed.datasets.pbmc68k_counts()` (real counts, bundled "
            "with scanpy) or `sc_sed.datasets.synthetic_counts()`."
        )
        raise ConnectionError(msg) from err
    loaded.var_names_make_unique()
    X = canonical_csr(loaded.X, dtype=np.float32)
    keep = np.bincount(X.indices, minlength=X.shape[1]) >= min_cells
    return _counts_anndata(
        X[:, keep], loaded.obs.copy(), loaded.var.loc[keep].copy(), name="pbmc3k_counts"
    )
