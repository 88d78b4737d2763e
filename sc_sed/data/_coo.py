"""COO triplets and dense arrays <-> sparse AnnData."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from ._checks import as_array, as_names, canonical_csr, check_values, get_matrix

if TYPE_CHECKING:
    import numpy.typing as npt

logger = logging.getLogger(__name__)


def _as_index_array(values: Any, *, what: str) -> np.ndarray:
    array = as_array(values, what=what)
    if array.ndim != 1:
        msg = f"`{what}` must be 1-D, got an array of shape {array.shape}."
        raise ValueError(msg)
    if array.size and not np.issubdtype(array.dtype, np.integer):
        if not np.issubdtype(array.dtype, np.floating) or np.any(array != np.round(array)):
            msg = f"`{what}` must hold integer indices, got dtype {array.dtype}."
            raise TypeError(msg)
    array = array.astype(np.int64)
    if array.size and array.min() < 0:
        msg = f"`{what}` must be non-negative indices, found minimum {array.min()}."
        raise ValueError(msg)
    return array


def _resolve_shape(
    rows: np.ndarray,
    cols: np.ndarray,
    shape: tuple[int, int] | None,
    obs_names: Sequence[Any] | None,
    var_names: Sequence[Any] | None,
) -> tuple[int, int]:
    inferred = [int(rows.max()) + 1 if rows.size else 0, int(cols.max()) + 1 if cols.size else 0]
    if shape is None:
        # names define the size when given; otherwise the largest index does
        shape = (
            len(obs_names) if obs_names is not None else inferred[0],
            len(var_names) if var_names is not None else inferred[1],
        )
    if len(shape) != 2:
        msg = f"`shape` must be (n_obs, n_vars), got {shape!r}."
        raise ValueError(msg)
    for axis, (size, need) in enumerate(zip(shape, inferred, strict=True)):
        if need > size:
            what = "rows" if axis == 0 else "cols"
            msg = f"`{what}` holds index {need - 1} but the shape (from `shape` or the names) allows at most {size - 1}; enlarge `shape` or pass more names."
            raise ValueError(msg)
    return int(shape[0]), int(shape[1])


def _check_duplicates(rows: np.ndarray, cols: np.ndarray, n_vars: int) -> None:
    keys = rows * max(n_vars, 1) + cols
    unique, counts = np.unique(keys, return_counts=True)
    if np.any(counts > 1):
        first = unique[counts > 1][:5]
        pairs = [(int(k // max(n_vars, 1)), int(k % max(n_vars, 1))) for k in first]
        msg = (
            f"{int(np.sum(counts > 1))} (row, col) positions occur more than once, e.g. {pairs}; "
            "aggregate them first or pass `duplicates='sum'`."
        )
        raise ValueError(msg)


def from_coo(
    rows: npt.ArrayLike,
    cols: npt.ArrayLike,
    values: npt.ArrayLike,
    *,
    shape: tuple[int, int] | None = None,
    obs_names: Sequence[Any] | None = None,
    var_names: Sequence[Any] | None = None,
    duplicates: Literal["sum", "error"] = "sum",
    dtype: npt.DTypeLike = np.float32,
) -> AnnData:
    """Build a sparse AnnData from COO triplets ``(rows[k], cols[k]) = values[k]``.

    Parameters
    ----------
    rows, cols
        Non-negative integer row (observation) and column (feature) indices, one per entry.
    values
        Finite real values, one per entry. Zeros are not stored (they are exact zeros anyway).
    shape
        ``(n_obs, n_vars)``. By default the lengths of ``obs_names``/``var_names`` when given,
        else one more than the largest row/column index.
    obs_names, var_names
        Unique names (stored as ``str``); default ``"0", "1", ...``.
    duplicates
        What to do when a ``(row, col)`` position occurs more than once: ``"sum"`` adds the
        values (as :func:`scipy.sparse.coo_matrix` does; positions that sum to zero are dropped),
        ``"error"`` raises a :class:`ValueError`.
    dtype
        Value dtype of ``X``. Use ``np.float64`` for a bit-exact round trip of float64 values.
        Values it cannot hold (after summing duplicates), e.g. 300 in ``int8``, 4.5 in an
        integer dtype, -1 in an unsigned one or 1e5 in ``float16``, raise a ValueError
        naming the value; nothing is wrapped or truncated.

    Returns
    -------
    AnnData with ``X`` a canonical :class:`scipy.sparse.csr_matrix` (sorted indices, no stored
    zeros). :func:`to_coo` returns the non-zero triplets back in row-major order.
    """
    rows_ = _as_index_array(rows, what="rows")
    cols_ = _as_index_array(cols, what="cols")
    vals = as_array(values, what="values")
    if vals.ndim != 1 or not (len(rows_) == len(cols_) == len(vals)):
        msg = f"`rows`, `cols` and `values` must be 1-D of equal length, got {len(rows_)}, {len(cols_)}, {vals.shape}."
        raise ValueError(msg)
    check_values(vals, what="`values`")
    if duplicates not in ("sum", "error"):
        msg = f"`duplicates` must be 'sum' or 'error', got {duplicates!r}."
        raise ValueError(msg)
    n_obs, n_vars = _resolve_shape(rows_, cols_, shape, obs_names, var_names)
    if duplicates == "error":
        _check_duplicates(rows_, cols_, n_vars)
    coo = sp.coo_matrix((vals, (rows_, cols_)), shape=(n_obs, n_vars))
    return AnnData(
        X=canonical_csr(coo, dtype=dtype, what="`values`"),
        obs=pd.DataFrame(index=as_names(obs_names, n_obs, what="obs_names")),
        var=pd.DataFrame(index=as_names(var_names, n_vars, what="var_names")),
    )


def to_coo(
    adata: AnnData, *, layer: str | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the non-zero entries of ``adata.X`` (or a layer) as COO triplets.

    Parameters
    ----------
    adata
        Annotated data matrix.
    layer
        Layer to read instead of ``X``.

    Returns
    -------
    ``(rows, cols, values)``: ``int64`` indices and the stored values, sorted by row then
    column, explicit zeros left out. ``from_coo(rows, cols, values, shape=adata.shape)``
    rebuilds the matrix.
    """
    csr = canonical_csr(get_matrix(adata, layer), dtype=None)
    rows = np.repeat(np.arange(csr.shape[0], dtype=np.int64), np.diff(csr.indptr))
    return rows, csr.indices.astype(np.int64), csr.data.copy()


def from_dense(
    array: npt.ArrayLike | pd.DataFrame,
    *,
    threshold: float = 0.0,
    obs_names: Sequence[Any] | None = None,
    var_names: Sequence[Any] | None = None,
    dtype: npt.DTypeLike = np.float32,
) -> AnnData:
    """Build a sparse AnnData from a dense 2-D array, zeroing entries with ``|value| <= threshold``.

    Parameters
    ----------
    array
        ``(n_obs, n_vars)`` finite real array. A :class:`pandas.DataFrame` also gives the
        default ``obs_names`` (its index) and ``var_names`` (its columns).
    threshold
        Non-negative; entries with ``|value| <= threshold`` become exact zeros (``0.0`` keeps
        every non-zero).
    obs_names, var_names
        Unique names (stored as ``str``); default ``"0", "1", ...``.
    dtype
        Value dtype of ``X``; values it cannot hold (e.g. -1 in ``uint8``) raise a
        ValueError naming the value.

    Returns
    -------
    AnnData with ``X`` a canonical :class:`scipy.sparse.csr_matrix`; :func:`to_dense` returns
    the thresholded array.
    """
    if isinstance(array, pd.DataFrame):
        obs_names = array.index if obs_names is None else obs_names
        var_names = array.columns if var_names is None else var_names
        array = array.to_numpy()
    dense = as_array(array, what="`array`")
    if dense.ndim != 2:
        msg = f"`array` must be 2-D (n_obs, n_vars), got shape {dense.shape}; reshape it first."
        raise ValueError(msg)
    if dense.dtype == bool:
        dense = dense.astype(np.float32)
    check_values(dense, what="`array`")
    if not np.isfinite(threshold) or threshold < 0:
        msg = f"`threshold` must be a finite number >= 0, got {threshold!r}."
        raise ValueError(msg)
    kept = np.where(np.abs(dense) > threshold, dense, 0)
    logger.debug("from_dense: %d of %d entries non-zero", np.count_nonzero(kept), kept.size)
    return AnnData(
        X=canonical_csr(kept, dtype=dtype, what="`array`"),
        obs=pd.DataFrame(index=as_names(obs_names, dense.shape[0], what="obs_names")),
        var=pd.DataFrame(index=as_names(var_names, dense.shape[1], what="var_names")),
    )


def to_dense(adata: AnnData, *, layer: str | None = None) -> np.ndarray:
    """Return ``adata.X`` (or a layer) as a dense ``(n_obs, n_vars)`` array.

    Parameters
    ----------
    adata
        Annotated data matrix.
    layer
        Layer to read instead of ``X``.

    Returns
    -------
    A new dense array with the stored dtype; zeros where nothing is stored.
    """
    matrix = get_matrix(adata, layer)
    return matrix.toarray() if sp.issparse(matrix) else np.array(matrix)
