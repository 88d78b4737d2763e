"""Normalisation, row subsampling and the PCA space fitted on real rows.

The evaluation space is documented once here: each row is scaled to a total of 1e4 and
``log1p``-transformed (skipped with ``normalize=False``, for data that are already normalised),
optionally restricted to highly variable features chosen on real rows, then projected onto
principal components fitted on (a seeded subsample of) the real rows only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from sc_sed._threads import torch_threads_kept

from ._checks import Matrix

logger = logging.getLogger(__name__)

TARGET_SUM = 1e4
CHUNK_ROWS = 4096


def _subsample(n: int, max_cells: int | None, rng: np.random.Generator) -> np.ndarray:
    """Sorted row indices: all ``n`` rows, or ``max_cells`` drawn without replacement."""
    if max_cells is None or n <= max_cells:
        return np.arange(n)
    return np.sort(rng.choice(n, size=max_cells, replace=False))


def _row_chunks(n: int, size: int = CHUNK_ROWS):
    """Yield consecutive row slices covering ``range(n)``."""
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def _normalize(X: Matrix, *, normalize: bool) -> Matrix:
    """Return a float64 copy of ``X``, scaled to 1e4 per row and ``log1p``-ed when ``normalize``.

    scanpy's ``normalize_total`` and ``log1p`` on the copy. Rows whose total is zero stay
    zero. Sparse input stays sparse (only stored entries change).
    """
    import scanpy as sc
    from anndata import AnnData

    if sparse.issparse(X):
        out = sparse.csr_matrix(X, dtype=np.float64, copy=True)
    else:
        out = np.array(X, dtype=np.float64, copy=True)
    if not normalize:
        return out
    wrapped = AnnData(out)
    with torch_threads_kept():  # numba's kernels reset torch's thread count
        sc.pp.normalize_total(wrapped, target_sum=TARGET_SUM)
        sc.pp.log1p(wrapped)
    return wrapped.X


def _normalized_means(X: Matrix, *, normalize: bool) -> np.ndarray:
    """Per-feature mean of the normalised values, computed in row chunks.

    Chunked because the normalised copy of all rows would double the memory of the data.
    """
    total = np.zeros(X.shape[1])
    for rows in _row_chunks(X.shape[0]):
        total += np.asarray(_normalize(X[rows], normalize=normalize).sum(axis=0)).ravel()
    return total / X.shape[0]


def _select_features(Xn: Matrix, n_hvg: int | None, *, normalize: bool) -> np.ndarray | None:
    """Return the indices of the ``n_hvg`` most variable features of normalised real rows (None: all).

    With ``normalize=True`` this is scanpy's ``highly_variable_genes(flavor="seurat")``; with
    already normalised data (``normalize=False``) the features of highest variance are kept.
    """
    if n_hvg is None or n_hvg >= Xn.shape[1]:
        return None
    if n_hvg < 1:
        msg = f"`n_hvg` must be a positive integer or None, got {n_hvg}."
        raise ValueError(msg)
    if normalize:
        import scanpy as sc
        from anndata import AnnData

        hvg = sc.pp.highly_variable_genes(
            AnnData(Xn), n_top_genes=n_hvg, flavor="seurat", inplace=False
        )
        return np.flatnonzero(hvg["highly_variable"].to_numpy())
    mean = np.asarray(Xn.mean(axis=0)).ravel()
    sq = Xn.multiply(Xn) if sparse.issparse(Xn) else Xn**2
    var = np.asarray(sq.mean(axis=0)).ravel() - mean**2
    return np.sort(np.argsort(-var, kind="stable")[:n_hvg])


@dataclass
class _PCASpace:
    """Normalisation + feature subset + PCA fitted on real rows; ``transform`` maps any rows."""

    normalize: bool
    features: np.ndarray | None
    mean_: np.ndarray
    components_: np.ndarray
    explained_variance_: np.ndarray
    explained_variance_ratio_: np.ndarray

    @property
    def n_pcs(self) -> int:
        return self.components_.shape[0]

    def transform(self, X: Matrix) -> np.ndarray:
        """Principal-component coordinates of the rows of ``X`` (raw values), in row chunks."""
        offset = self.mean_ @ self.components_.T
        out = np.empty((X.shape[0], self.n_pcs))
        for rows in _row_chunks(X.shape[0]):
            Xn = _normalize(X[rows], normalize=self.normalize)
            if self.features is not None:
                Xn = Xn[:, self.features]
            out[rows] = np.asarray(Xn @ self.components_.T) - offset
        return out


def _check_variance(Xn: Matrix) -> None:
    """Raise when the rows are all the same (no variance: the principal axes are undefined)."""
    low, high = Xn.min(axis=0), Xn.max(axis=0)
    if sparse.issparse(low):
        low, high = low.toarray(), high.toarray()
    if np.array_equal(np.asarray(low), np.asarray(high)):
        msg = (
            f"The {Xn.shape[0]} real rows the PCA is fitted on are identical (after "
            "normalisation), so the principal axes are undefined; pass real rows that differ."
        )
        raise ValueError(msg)


def _fit_pca_space(
    X_real: Matrix, *, normalize: bool, n_pcs: int, n_hvg: int | None, seed: int
) -> _PCASpace:
    """Fit the evaluation space on the given real rows (subsample them beforehand if needed)."""
    from scipy.sparse.linalg import ArpackError
    from sklearn.decomposition import PCA

    if n_pcs < 1:
        msg = f"`n_pcs` must be a positive integer, got {n_pcs}."
        raise ValueError(msg)
    Xn = _normalize(X_real, normalize=normalize)
    features = _select_features(Xn, n_hvg, normalize=normalize)
    if features is not None:
        Xn = Xn[:, features]
    n_comps = min(n_pcs, min(Xn.shape) - 1)
    if n_comps < 1:
        msg = f"Cannot fit a PCA on {Xn.shape[0]} real rows x {Xn.shape[1]} features; need at least 2 of each."
        raise ValueError(msg)
    if n_comps < n_pcs:
        logger.warning(
            "Using %d principal components instead of n_pcs=%d (data shape %s).",
            n_comps,
            n_pcs,
            Xn.shape,
        )
    _check_variance(Xn)
    try:
        pca = PCA(n_components=n_comps, svd_solver="arpack", random_state=seed).fit(Xn)
    except ArpackError:  # e.g. rank below n_comps; the randomised solver does not need it
        pca = PCA(n_components=n_comps, svd_solver="randomized", random_state=seed).fit(Xn)
    return _PCASpace(
        normalize=normalize,
        features=features,
        mean_=pca.mean_,
        components_=pca.components_,
        explained_variance_=pca.explained_variance_,
        explained_variance_ratio_=pca.explained_variance_ratio_,
    )
