"""Shared validation and canonical-CSR helpers for the ``sc_sed.data`` adapters.

Every adapter produces ``X`` in one canonical form: a :class:`scipy.sparse.csr_matrix`
with sorted indices, summed duplicates and no explicitly stored zeros.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

if TYPE_CHECKING:
    from anndata import AnnData


def canonical_csr(matrix: Any, *, dtype: Any = np.float32) -> sp.csr_matrix:
    """Return a new canonical CSR matrix (sorted indices, no duplicates, no stored zeros).

    Parameters
    ----------
    matrix
        Anything :class:`scipy.sparse.csr_matrix` accepts (sparse matrix or array, dense array).
    dtype
        Value dtype of the result.

    Returns
    -------
    A copy of ``matrix`` in canonical CSR form; the input is never modified.
    """
    out = sp.csr_matrix(
        matrix if sp.issparse(matrix) else np.asarray(matrix), dtype=dtype, copy=True
    )
    out.sum_duplicates()
    out.eliminate_zeros()
    out.sort_indices()
    return out


def get_matrix(adata: AnnData, layer: str | None) -> Any:
    """Return ``adata.X`` or ``adata.layers[layer]``, with a clear error for a missing layer."""
    if layer is None:
        if adata.X is None:
            msg = "`adata.X` is empty; pass `layer=` naming the layer that holds the data."
            raise ValueError(msg)
        return adata.X
    if layer not in adata.layers:
        msg = f"Layer {layer!r} not found in `adata.layers`; available: {list(adata.layers)}."
        raise KeyError(msg)
    return adata.layers[layer]


def as_names(names: Sequence[Any] | pd.Index | None, n: int, *, what: str) -> pd.Index:
    """Return ``names`` as a unique string index of length ``n`` (default ``"0"..."n-1"``).

    Parameters
    ----------
    names
        The names, or ``None`` for the default ``"0", "1", ...``.
    n
        Required length.
    what
        Argument name used in error messages (e.g. ``"obs_names"``).

    Returns
    -------
    A :class:`pandas.Index` of ``str``.
    """
    if names is None:
        return pd.Index([str(i) for i in range(n)])
    array = np.asarray(names)
    if array.ndim != 1 or len(array) != n:
        msg = f"`{what}` has shape {array.shape} but the data have {n} entries; pass one name each."
        raise ValueError(msg)
    index = pd.Index(array.astype(str).tolist())
    if not index.is_unique:
        dups = index[index.duplicated()].unique()[:5].tolist()
        msg = f"`{what}` must be unique; repeated: {dups}. Make them unique first."
        raise ValueError(msg)
    return index


def check_values(values: np.ndarray, *, what: str, nonnegative: bool = False) -> None:
    """Raise a ``ValueError`` when ``values`` hold NaN/inf (or negatives, if not allowed)."""
    if values.size == 0:
        return
    if not np.issubdtype(values.dtype, np.number) or np.issubdtype(
        values.dtype, np.complexfloating
    ):
        msg = f"{what} must be real numbers, got dtype {values.dtype}."
        raise TypeError(msg)
    if not np.all(np.isfinite(values)):
        n_bad = int(np.sum(~np.isfinite(values)))
        msg = f"{what} contain {n_bad} NaN or infinite entries; remove or replace them first."
        raise ValueError(msg)
    if nonnegative and np.any(values < 0):
        n_bad = int(np.sum(values < 0))
        msg = f"{what} must be non-negative, found {n_bad} negative entries (min {values.min()})."
        raise ValueError(msg)


def as_array(data: Any, *, what: str) -> np.ndarray:
    """Convert ``data`` to a numeric array, with a clear error for ragged input."""
    try:
        array = np.asarray(data)
    except ValueError as err:
        msg = f"{what} is ragged (rows of different lengths); pass a rectangular array."
        raise ValueError(msg) from err
    if array.dtype == object:
        msg = f"{what} is ragged or not numeric (object array); pass a rectangular numeric array."
        raise ValueError(msg)
    return array
