"""One-pass summary of a (sparse or dense) data matrix, used to validate and set up models."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import scipy.sparse as sp


@dataclass
class MatrixStats:
    """What SED needs to know about a data matrix.

    Attributes
    ----------
    n_obs, n_vars
        Shape.
    max_nonzero
        Most non-zero entries in one row.
    mean_nonzero
        Average non-zero entries per row.
    is_integer
        All values are integers.
    has_negative
        Some value is below zero.
    min_value
        Smallest value (0 for an all-zero matrix).
    n_nonfinite
        Number of NaN/inf values.
    seen
        ``(n_vars,)`` bool: the feature is non-zero in at least one row.
    n_detected
        ``(n_vars,)`` int: rows in which the feature is non-zero.
    """

    n_obs: int
    n_vars: int
    max_nonzero: int
    mean_nonzero: float
    is_integer: bool
    has_negative: bool
    min_value: float
    n_nonfinite: int
    seen: np.ndarray
    n_detected: np.ndarray

    def to_dict(self) -> dict:
        """Plain-dict form (for the scvi-tools registry)."""
        return asdict(self)


def _chunks(x, chunk_size: int):
    for start in range(0, x.shape[0], chunk_size):
        yield x[start : start + chunk_size]


def matrix_stats(x, *, chunk_size: int = 2048) -> MatrixStats:
    """Summarise a matrix without densifying it (dense input is read in row chunks).

    Parameters
    ----------
    x
        ``(n_obs, n_vars)`` SciPy sparse matrix, NumPy array or array-like (e.g. a backed
        dataset that supports row slicing).
    chunk_size
        Rows per chunk.

    Returns
    -------
    The :class:`MatrixStats`.
    """
    n_obs, n_vars = x.shape
    seen = np.zeros(n_vars, dtype=bool)
    n_detected = np.zeros(n_vars, dtype=np.int64)
    row_nnz = np.zeros(n_obs, dtype=np.int64)
    is_int, min_value, n_bad, offset = True, 0.0, 0, 0
    for chunk in _chunks(x, chunk_size):
        chunk = sp.csr_matrix(chunk)
        chunk.eliminate_zeros()
        data = chunk.data
        finite = np.isfinite(data)
        n_bad += int((~finite).sum())
        data = data[finite]
        if data.size:
            is_int &= bool(np.all(data == np.round(data)))
            min_value = min(min_value, float(data.min()))
        seen[chunk.indices] = True
        n_detected += np.bincount(chunk.indices, minlength=n_vars)
        row_nnz[offset : offset + chunk.shape[0]] = np.diff(chunk.indptr)
        offset += chunk.shape[0]
    return MatrixStats(
        n_obs=n_obs,
        n_vars=n_vars,
        max_nonzero=int(row_nnz.max()) if n_obs else 0,
        mean_nonzero=float(row_nnz.mean()) if n_obs else 0.0,
        is_integer=is_int,
        has_negative=min_value < 0,
        min_value=min_value,
        n_nonfinite=n_bad,
        seen=seen,
        n_detected=n_detected,
    )
