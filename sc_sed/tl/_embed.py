"""``co_embed``: real and synthetic rows in one AnnData, embedded in the real rows' PCA space."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import sparse

from sc_sed._threads import torch_threads_kept

from ._checks import Matrix, prepare_inputs
from ._preprocess import _fit_pca_space, _normalize, _PCASpace, _subsample

if TYPE_CHECKING:
    from anndata import AnnData

logger = logging.getLogger(__name__)

ORIGIN_KEY = "origin"
ORIGINS = ("real", "synthetic")


def _stack(blocks: list[Matrix]) -> Matrix:
    if any(sparse.issparse(b) for b in blocks):
        return sparse.vstack([sparse.csr_matrix(b) for b in blocks], format="csr")
    return np.vstack(blocks)


def _shared_obs(real: AnnData, synth: AnnData, rows: tuple[np.ndarray, np.ndarray]) -> pd.DataFrame:
    """Obs columns present in both objects (categorical when either side is not numeric)."""
    shared = [c for c in real.obs.columns if c in synth.obs.columns and c != ORIGIN_KEY]
    if ORIGIN_KEY in real.obs.columns or ORIGIN_KEY in synth.obs.columns:
        logger.warning(
            "obs[%r] of the inputs is replaced by the real/synthetic origin.", ORIGIN_KEY
        )
    columns = {}
    for col in shared:
        parts = [
            ad.obs[col].iloc[r].reset_index(drop=True)
            for ad, r in zip((real, synth), rows, strict=True)
        ]
        numeric = all(
            pd.api.types.is_numeric_dtype(p) and not isinstance(p.dtype, pd.CategoricalDtype)
            for p in parts
        )
        joined = pd.concat(
            parts if numeric else [p.astype(object) for p in parts], ignore_index=True
        )
        columns[col] = joined if numeric else joined.astype("category")
    origin = np.repeat(ORIGINS, [len(rows[0]), len(rows[1])])
    return pd.DataFrame({ORIGIN_KEY: pd.Categorical(origin, categories=ORIGINS), **columns})


def _obs_names(real: AnnData, synth: AnnData, rows: tuple[np.ndarray, np.ndarray]) -> pd.Index:
    names = [
        pd.Index(ad.obs_names[r]).astype(str) for ad, r in zip((real, synth), rows, strict=True)
    ]
    joined = names[0].append(names[1])
    if joined.is_unique:
        return joined
    logger.info(
        "obs_names overlap between real and synthetic; suffixing them with -real/-synthetic."
    )
    return (names[0] + "-real").append(names[1] + "-synthetic")


def _store_pca(adata: AnnData, space: _PCASpace, pcs: np.ndarray, *, n_hvg: int | None) -> None:
    adata.obsm["X_pca"] = pcs
    loadings = np.zeros((adata.n_vars, space.n_pcs))
    features = space.features if space.features is not None else slice(None)
    loadings[features] = space.components_.T
    adata.varm["PCs"] = loadings
    adata.uns["pca"] = {
        "variance": space.explained_variance_,
        "variance_ratio": space.explained_variance_ratio_,
        "params": {"fitted_on": "real", "n_hvg": n_hvg, "zero_center": True},
    }


def co_embed(
    real: AnnData,
    synth: AnnData,
    *,
    layer: str | None = None,
    n_pcs: int = 30,
    n_hvg: int | None = None,
    normalize: bool = True,
    n_neighbors: int = 15,
    seed: int = 0,
    max_cells: int | None = None,
    align: bool = False,
) -> AnnData:
    """Embed real and synthetic rows together in the PCA space of the real rows.

    Rows are normalised as in :func:`sc_sed.tl.evaluate` (1e4 per row + ``log1p`` unless
    ``normalize=False``); principal components are fitted on the real rows only and applied to
    both sets; the neighbour graph and UMAP (scanpy) are then computed on all rows together.

    Parameters
    ----------
    real
        Real data.
    synth
        Synthetic data with the same features.
    layer
        Layer holding the values in both objects; ``None`` uses ``.X``.
    n_pcs
        Number of principal components.
    n_hvg
        Fit the PCA on this many highly variable features of the real rows; ``None`` uses all.
    normalize
        Normalise counts to 1e4 per row and ``log1p``; ``False`` if already normalised.
    n_neighbors
        Neighbours of the kNN graph behind the UMAP.
    seed
        Seed of the subsampling, the PCA solver and the UMAP.
    max_cells
        Keep at most this many rows of each set (seeded subsample); ``None`` keeps all.
    align
        If the feature sets differ, use the shared features (with a warning) instead of raising.

    Returns
    -------
    A new AnnData (real rows first) with ``X`` the normalised values (sparse if any input is
    sparse), ``layers["counts"]`` the input values when ``normalize=True``, ``obs["origin"]``
    (categorical ``"real"``/``"synthetic"``) plus every obs column the two inputs share,
    ``obsm["X_pca"]``, ``varm["PCs"]`` (zero for features outside the PCA), ``uns["pca"]``,
    ``obsp["distances"]``/``obsp["connectivities"]``, ``obsm["X_umap"]`` and
    ``uns["sc_sed"]["co_embed"]`` with the settings. The inputs are not modified.

    Examples
    --------
    >>> emb = sc_sed.tl.co_embed(adata_test, synth)
    >>> sc_sed.pl.umap(emb, color="origin")
    """
    inputs = prepare_inputs(
        {"real": real, "synth": synth}, layer=layer, normalize=normalize, align=align
    )
    rng = np.random.default_rng(seed)
    rows = tuple(_subsample(inputs.X[n].shape[0], max_cells, rng) for n in ("real", "synth"))
    values = [inputs.X[n][r] for n, r in zip(("real", "synth"), rows, strict=True)]
    if min(v.shape[0] for v in values) < 2:
        msg = "co_embed needs at least 2 rows in each of `real` and `synth`."
        raise ValueError(msg)
    space = _fit_pca_space(values[0], normalize=normalize, n_pcs=n_pcs, n_hvg=n_hvg, seed=seed)
    adata = _assemble(real, synth, rows, values, inputs.var_names, normalize=normalize)
    _store_pca(adata, space, np.vstack([space.transform(v) for v in values]), n_hvg=n_hvg)
    _neighbors_umap(adata, n_neighbors=n_neighbors, seed=seed)
    adata.uns["sc_sed"] = {
        "co_embed": {
            "layer": layer,
            "n_pcs": space.n_pcs,
            "n_hvg": n_hvg,
            "normalize": normalize,
            "n_neighbors": n_neighbors,
            "seed": seed,
            "max_cells": max_cells,
        }
    }
    return adata


def _assemble(
    real, synth, rows, values: list[Matrix], var_names: pd.Index, *, normalize: bool
) -> AnnData:
    from anndata import AnnData

    obs = _shared_obs(real, synth, rows)
    obs.index = _obs_names(real, synth, rows)
    adata = AnnData(
        X=_stack([_normalize(v, normalize=normalize).astype(np.float32) for v in values]),
        obs=obs,
        var=pd.DataFrame(index=pd.Index(var_names).astype(str)),
    )
    if normalize:
        adata.layers["counts"] = _stack([v.astype(np.float32, copy=True) for v in values])
    return adata


def _neighbors_umap(adata: AnnData, *, n_neighbors: int, seed: int) -> None:
    import scanpy as sc

    k = min(n_neighbors, adata.n_obs - 1)
    with torch_threads_kept():  # numba's kernels reset torch's thread count
        sc.pp.neighbors(adata, n_neighbors=k, use_rep="X_pca", random_state=seed)
        sc.tl.umap(adata, random_state=seed)
