"""Principal components of a sparse matrix without densifying it (implicit centring)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def sparse_pca(
    x: sp.spmatrix | sp.sparray,
    n_components: int,
    *,
    seed: int = 0,
    n_oversamples: int = 10,
    n_iter: int = 4,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Leading principal components of the rows of ``x``, by randomised SVD.

    The column means are subtracted implicitly (``(X - 1 m^T) Ω = X Ω - 1 (m^T Ω)``), so
    memory is that of ``x`` plus a few ``(n_features, n_components + n_oversamples)``
    blocks, never an ``(n_rows, n_features)`` dense matrix (Halko, Martinsson & Tropp,
    2011, with power iterations re-orthonormalised by QR).

    Parameters
    ----------
    x
        ``(n_rows, n_features)`` sparse matrix.
    n_components
        Number of components; at most ``min(n_rows, n_features) - 1``.
    seed
        Seed of the random test matrix (the result is deterministic for a seed).
    n_oversamples, n_iter
        Extra random directions and power iterations (accuracy of the small components).

    Returns
    -------
    ``loadings`` ``(n_features, n_components)`` (orthonormal columns), ``mean``
    ``(n_features,)`` (the column means) and ``sd`` ``(n_components,)``, the standard
    deviation of the rows' scores ``(x - mean) @ loadings`` along each component.
    """
    x = sp.csr_matrix(x, dtype=np.float64)
    n_rows, n_features = x.shape
    most = min(n_rows, n_features) - 1
    if not 1 <= n_components <= most:
        msg = (
            f"n_components must be between 1 and min(n_rows, n_features) - 1 = {most}, "
            f"got {n_components}."
        )
        raise ValueError(msg)
    mean = np.asarray(x.mean(axis=0)).ravel()

    def times(m: np.ndarray) -> np.ndarray:  # (X - 1 mean^T) @ m
        return x @ m - np.outer(np.ones(n_rows), mean @ m)

    def times_t(m: np.ndarray) -> np.ndarray:  # (X - 1 mean^T)^T @ m
        return x.T @ m - np.outer(mean, m.sum(axis=0))

    rng = np.random.default_rng(seed)
    k = min(most, n_components + n_oversamples)
    q, _ = np.linalg.qr(times(rng.standard_normal((n_features, k))))
    for _ in range(n_iter):
        q, _ = np.linalg.qr(times_t(q))
        q, _ = np.linalg.qr(times(q))
    _, s, vt = np.linalg.svd(times_t(q).T, full_matrices=False)
    loadings = vt[:n_components].T
    # a fixed sign per component (largest-magnitude loading positive): reproducible files
    signs = np.sign(loadings[np.abs(loadings).argmax(axis=0), np.arange(n_components)])
    loadings = loadings * np.where(signs == 0, 1.0, signs)
    sd = s[:n_components] / np.sqrt(max(1, n_rows - 1))
    return loadings, mean, sd
