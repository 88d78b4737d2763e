"""Shared validation and canonical-CSR helpers for the ``sc_sed.data`` adapters.

Every adapter produces ``X`` in one canonical form: a :class:`scipy.sparse.csr_matrix`
with sorted indices, summed duplicates and no explicitly stored zeros.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

if TYPE_CHECKING:
    from anndata import AnnData


def _wide_dtype(dtype: np.dtype) -> np.dtype:
    """Dtype in which stored values are summed without wrapping (int64/uint64/float64)."""
    if dtype.kind in "bi":
        return np.dtype(np.int64)
    if dtype.kind == "u":
        return np.dtype(np.uint64)
    if dtype.kind == "f" and dtype.itemsize < 8:
        return np.dtype(np.float64)
    return dtype


def canonical_block(
    matrix: Any, *, fmt: Literal["csr", "csc"] = "csr"
) -> tuple[sp.csr_matrix | sp.csc_matrix, int]:
    """Return a canonical copy of ``matrix`` and the number of duplicated entries summed.

    Duplicated ``(row, col)`` entries are **summed** (in int64, uint64 or float64, so
    they cannot wrap), explicitly stored zeros (also sums that cancel) are dropped and
    indices are sorted. The input is never modified.

    Parameters
    ----------
    matrix
        SciPy sparse matrix or array (any format) or dense array-like.
    fmt
        Format of the result.

    Returns
    -------
    The canonical matrix (values in the wide dtype) and how many stored entries were
    merged into another one.
    """
    cls = sp.csc_matrix if fmt == "csc" else sp.csr_matrix
    if sp.issparse(matrix):
        n_stored = int(matrix.nnz)
        out = cls(matrix, dtype=_wide_dtype(matrix.dtype), copy=True)
        out.has_canonical_format = False  # never trust a flag copied from the input
        out.sum_duplicates()
        n_summed = n_stored - int(out.nnz)
    else:
        array = np.asarray(matrix)
        out, n_summed = cls(array, dtype=_wide_dtype(array.dtype)), 0
    out.eliminate_zeros()
    out.sort_indices()
    return out, n_summed


def cast_exact(values: np.ndarray, dtype: Any, *, what: str) -> np.ndarray:
    """Cast ``values`` to ``dtype``, refusing any value the dtype cannot hold.

    Integer dtypes refuse fractional values and values outside their range (nothing is
    wrapped or truncated); float dtypes refuse values that overflow to infinity and
    integers they cannot hold exactly (e.g. 2049 in float16), while other floats are
    rounded to the nearest representable one (float64 to float32); bool refuses
    anything but 0 and 1.

    Parameters
    ----------
    values
        Finite values.
    dtype
        Requested dtype (``None`` keeps ``values``' dtype).
    what
        What the values are, for the messages.

    Returns
    -------
    A new array of ``dtype``.
    """
    if dtype is None:
        return np.array(values)
    target = np.dtype(dtype)
    if target.kind not in "biuf":
        msg = f"dtype={target} cannot hold {what}; pass a real numeric dtype (e.g. np.float32)."
        raise TypeError(msg)
    values = np.asarray(values)
    bad = _unrepresentable(values, target)
    if bad is not None:
        with np.errstate(over="ignore", invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            became = np.asarray([bad]).astype(target)[0].item()
        msg = (
            f"dtype={target} cannot hold {what}: {bad!r} would become {became!r}. Pass a "
            "dtype that holds the data (e.g. np.float32, np.float64 or a wider integer type)."
        )
        raise ValueError(msg)
    return values.astype(target)


def _unrepresentable(values: np.ndarray, target: np.dtype) -> Any:
    """Return the first value ``target`` cannot hold (exactly for integers), or None."""
    if values.size == 0:
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        if target.kind == "f":
            cast = values.astype(target)
            lost = ~np.isfinite(cast) & np.isfinite(values)
            if values.dtype.kind in "iu":  # integers must survive the round trip exactly
                lost |= cast.astype(values.dtype) != values
        elif target.kind == "b":
            lost = (values != 0) & (values != 1)
        elif values.dtype.kind in "iub":
            info = np.iinfo(target)
            lost = (values < info.min) | (values > info.max)
        else:
            info = np.iinfo(target)  # float bounds: info.max + 1 is a power of two, exact
            lost = (values != np.round(values)) | (values < info.min)
            lost |= values >= float(info.max) + 1
    if not np.any(lost):
        return None
    return values[np.flatnonzero(lost)[0]].item()


def canonical_csr(matrix: Any, *, dtype: Any = np.float32, what: str = "the values") -> sp.csr_matrix:
    """Return a new canonical CSR matrix (sorted indices, no duplicates, no stored zeros).

    Parameters
    ----------
    matrix
        Anything :class:`scipy.sparse.csr_matrix` accepts (sparse matrix or array, dense array).
    dtype
        Value dtype of the result (``None``: the input's). Duplicated entries are summed
        before the cast, which refuses values the dtype cannot hold (:func:`cast_exact`).
    what
        What the values are, for the messages.

    Returns
    -------
    A copy of ``matrix`` in canonical CSR form; the input is never modified.
    """
    input_dtype = matrix.dtype if sp.issparse(matrix) else np.asarray(matrix).dtype
    out, _ = canonical_block(matrix)
    out.data = cast_exact(out.data, input_dtype if dtype is None else dtype, what=what)
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
